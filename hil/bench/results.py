"""Benchmark results: measurements, their baselines, the console table and the JSON.

A `Measurement` is the repeated samples of one metric for one variant (``untracked``,
``eager``, ...) of one case (``100 MiB``, ``SET -d 1024``) of one benchmark. The ratio of
a variant is always against the baseline variant of the same case measured in the same
run. The seed's published figure, where the thesis gives one, travels with the row so
the table and the JSON show it beside ours.

``bench.json`` (schema ``wpp-hil.bench/1``)::

    {"schema": "wpp-hil.bench/1", "board": "emulated", "quick": true,
     "started": "2026-11-27T11:37:00+0000", "duration_s": 183.2,
     "bench_s": {"synthetic": 5.1, ...},          # wall time per benchmark
     "config": {...BenchConfig...}, "notes": ["..."],
     "wpp_unavailable": null | "why tracked variants could not run",
     "results": [{"bench": "synthetic", "case": "10 MiB", "variant": "eager",
                  "metric": "10 cycles", "unit": "ms", "higher_is_better": false,
                  "samples": [...],
                  "summary": {"n", "median", "min", "max", "q1", "q3", "iqr"} | null,
                  "baseline": "untracked" | null,
                  "ratio": {"median", "low", "high"} | null,   # value / baseline
                  "seed": 35.0 | null, "seed_note": "clear drop" | null,
                  "skipped": null | "why samples are missing",
                  "limitation": false,                          # true: known WPP limit
                  "note": null | "how this row was measured"}],
     "fits": [{"bench": "persist", "name": "persist" | "restore",
               "fit": {"intercept", "slope", "r2", "n"} | null,  # time_us over bytes
               "fixed_ms", "gib_per_s",
               "points": [{"bytes", "time_us"}],
               "seed": {"fixed_ms": 160.0, "gib_per_s": 1.3}, "note"}]}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.bench.stats import LinearFit, Ratio, Summary, ratio, summarize

SCHEMA = "wpp-hil.bench/1"


@dataclass
class Measurement:
    bench: str
    case: str
    variant: str
    metric: str
    unit: str
    samples: list[float] = field(default_factory=list)
    baseline: str | None = None  # variant of the same case to divide by
    higher_is_better: bool = False
    seed: float | None = None  # the seed's ratio (or value) for this row
    seed_note: str = ""
    skipped: str | None = None  # why samples are missing (e.g. the kernel has no WPP)
    limitation: bool = False  # `skipped` is a known limitation of WPP, not a broken run
    note: str = ""  # how the row was measured when that changes its reading (a footnote)

    @property
    def summary(self) -> Summary | None:
        return summarize(self.samples) if self.samples else None


@dataclass
class Fit:
    """A least-squares fit of firmware durations over bytes (persist or restore)."""

    bench: str
    name: str
    fit: LinearFit | None
    points: list[tuple[float, float]]  # (bytes, microseconds)
    seed_fixed_ms: float | None = None
    seed_gib_s: float | None = None
    note: str = ""

    @property
    def fixed_ms(self) -> float | None:
        return self.fit.intercept / 1000.0 if self.fit else None

    @property
    def gib_s(self) -> float | None:
        """Bandwidth from the slope (µs per byte -> GiB/s); None if not positive."""
        if self.fit is None or self.fit.slope <= 0:
            return None
        return 1e6 / self.fit.slope / 2**30


@dataclass
class BenchReport:
    board: str
    quick: bool
    measurements: list[Measurement] = field(default_factory=list)
    fits: list[Fit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    unavailable: str | None = None  # why tracked variants cannot run on this target
    bench_s: dict[str, float] = field(default_factory=dict)  # wall time per benchmark
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    duration_s: float = 0.0

    def failures(self) -> list[Measurement]:
        """Rows that should have samples but have none (not the tracked rows of a target
        without WPP): the workload or its parser broke. A row left empty without any
        reason is a failure too (with WPP present, None == None must not excuse it)."""
        return [m for m in self.measurements
                if not m.samples and not m.limitation
                and (m.skipped is None or m.skipped != self.unavailable)]

    def add(self, m: Measurement) -> Measurement:
        self.measurements.append(m)
        return m

    def baseline_of(self, m: Measurement) -> Measurement | None:
        if m.baseline is None:
            return None
        for other in self.measurements:
            if (other.bench, other.case, other.metric, other.variant) == (
                    m.bench, m.case, m.metric, m.baseline):
                return other
        return None

    def ratio_of(self, m: Measurement) -> Ratio | None:
        base = self.baseline_of(m)
        mine = m.summary
        theirs = base.summary if base is not None else None
        if mine is None or theirs is None:
            return None
        return ratio(mine, theirs)

    def to_json(self) -> dict[str, Any]:
        rows = []
        for m in self.measurements:
            s = m.summary
            r = self.ratio_of(m)
            rows.append({
                "bench": m.bench, "case": m.case, "variant": m.variant,
                "metric": m.metric, "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "samples": m.samples,
                "summary": s.to_json() if s else None,
                "baseline": m.baseline,
                "ratio": r.to_json() if r else None,
                "seed": m.seed, "seed_note": m.seed_note or None,
                "skipped": m.skipped, "limitation": m.limitation,
                "note": m.note or None,
            })
        fits = [{
            "bench": f.bench, "name": f.name,
            "fit": f.fit.to_json() if f.fit else None,
            "fixed_ms": f.fixed_ms, "gib_per_s": f.gib_s,
            "points": [{"bytes": b, "time_us": t} for b, t in f.points],
            "seed": {"fixed_ms": f.seed_fixed_ms, "gib_per_s": f.seed_gib_s},
            "note": f.note or None,
        } for f in self.fits]
        return {"schema": SCHEMA, "board": self.board, "quick": self.quick,
                "started": self.started, "duration_s": round(self.duration_s, 3),
                "bench_s": {k: round(v, 3) for k, v in self.bench_s.items()},
                "config": self.config, "notes": self.notes,
                "wpp_unavailable": self.unavailable,
                "results": rows, "fits": fits}

    def write_json(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def _num(v: float) -> str:
    """Three significant digits without scientific notation for the usual ranges."""
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _seed_cell(m: Measurement) -> str:
    if m.seed is not None:
        return f"{_num(m.seed)}x" if m.baseline else _num(m.seed)
    return m.seed_note or "-"


def format_table(report: BenchReport) -> str:
    """The console table: median, spread (min-max, IQR), ratio to the baseline, seed."""
    head = ("bench", "case", "variant", "median", "min-max", "IQR", "ratio (range)", "seed")
    rows: list[tuple[str, ...]] = []
    footnotes: list[str] = []  # one number per distinct note, shared by the rows that say it
    for m in report.measurements:
        s = m.summary
        variant = m.variant
        if m.note:
            if m.note not in footnotes:
                footnotes.append(m.note)
            variant = f"{m.variant} [{footnotes.index(m.note) + 1}]"
        if s is None:
            why = m.skipped or "no samples"
            if why == report.unavailable:
                why = "no WPP on target"
            elif len(why) > 48:
                why = why[:45] + "..."  # the whole reason is in the JSON
            rows.append((m.bench, m.case, variant,
                         f"{'n/a' if m.limitation else 'skipped'}: {why}", "", "", "",
                         _seed_cell(m)))
            continue
        r = report.ratio_of(m)
        ratio_cell = f"{r.median:.2f}x ({r.low:.2f}-{r.high:.2f})" if r else "baseline" \
            if any(o.baseline == m.variant and o.case == m.case and o.bench == m.bench
                   for o in report.measurements) else "-"
        rows.append((m.bench, m.case, variant, f"{_num(s.median)} {m.unit}",
                     f"{_num(s.min)}-{_num(s.max)}", _num(s.iqr), ratio_cell, _seed_cell(m)))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    lines += [f"[{i}] {n}" for i, n in enumerate(footnotes, 1)]
    for f in report.fits:
        if f.fit is None:
            lines.append(f"{f.bench} {f.name}: no fit ({f.note or 'too few points'})")
            continue
        bw = f"{f.gib_s:.2f} GiB/s" if f.gib_s is not None else "n/a"
        seed = ""
        if f.seed_fixed_ms is not None:
            seed = f"  [seed: {f.seed_fixed_ms:.0f} ms + {f.seed_gib_s} GiB/s]"
        lines.append(f"{f.bench} {f.name}: {f.fixed_ms:.1f} ms fixed + {bw} "
                     f"(r2 {f.fit.r2:.3f}, {f.fit.n} sizes, {len(f.points)} runs){seed}")
    if report.bench_s:
        lines.append("took: " + ", ".join(f"{k} {v:.0f} s" for k, v in report.bench_s.items())
                     + f" (total {report.duration_s:.0f} s)")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
