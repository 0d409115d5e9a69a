"""PNG plots of a `BenchReport` (matplotlib, Agg backend: no display, no network).

One bar chart per benchmark (median with min/max whiskers, one bar per variant and
case) and one scatter-with-fit per firmware duration fit, drawn like the seed's
figure 6.4 (persist time over allocated memory, fixed overhead at zero).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hil.bench.results import BenchReport, Fit, Measurement


def _bars(bench: str, rows: list[Measurement], out: Path) -> Path:
    cases = list(dict.fromkeys(m.case for m in rows))
    variants = list(dict.fromkeys(m.variant for m in rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(cases) * max(1, len(variants)) / 2), 4))
    width = 0.8 / max(1, len(variants))
    for vi, variant in enumerate(variants):
        xs, meds, lo, hi = [], [], [], []
        for ci, case in enumerate(cases):
            m = next((r for r in rows if r.case == case and r.variant == variant), None)
            s = m.summary if m is not None else None
            if s is None:
                continue
            xs.append(ci + (vi - (len(variants) - 1) / 2) * width)
            meds.append(s.median)
            lo.append(s.median - s.min)
            hi.append(s.max - s.median)
        if xs:
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=variant)
    ax.set_xticks(range(len(cases)), cases, rotation=20 if len(cases) > 4 else 0)
    units = {r.unit for r in rows}
    metrics = {r.metric for r in rows}
    ax.set_ylabel(f"{'/'.join(sorted(metrics))} [{'/'.join(sorted(units))}]")
    if any(not r.higher_is_better for r in rows) and _spans_decades(rows):
        ax.set_yscale("log")
    ax.set_title(f"{bench}: median, whiskers min-max")
    return _save(fig, ax, out / f"{bench}.png")


def _save(fig: Figure, ax: Axes, path: Path) -> Path:
    """Finish a plot the same way for every kind and free it (pyplot keeps figures alive)."""
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _spans_decades(rows: list[Measurement]) -> bool:
    meds = [s.median for r in rows if (s := r.summary) is not None and s.median > 0]
    return bool(meds) and max(meds) / min(meds) > 50


def _fit_plot(fit: Fit, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [b / 2**20 for b, _ in fit.points]
    ys = [t / 1000 for _, t in fit.points]
    ax.scatter(xs, ys, label="firmware time_us", zorder=3)
    if fit.fit is not None and xs:
        top = max(xs)
        ax.plot([0, top], [fit.fit.predict(0) / 1000, fit.fit.predict(top * 2**20) / 1000],
                label=f"fit: {fit.fixed_ms:.1f} ms + "
                      f"{fit.gib_s:.2f} GiB/s" if fit.gib_s else "fit")
    if fit.seed_fixed_ms is not None and fit.seed_gib_s and xs:
        top = max(xs)
        ax.plot([0, top], [fit.seed_fixed_ms,
                           fit.seed_fixed_ms + top / 1024 / fit.seed_gib_s * 1000],
                linestyle="--", label=f"seed: {fit.seed_fixed_ms:.0f} ms + "
                                      f"{fit.seed_gib_s} GiB/s")
    ax.set_xlabel("page bytes copied [MiB]")
    ax.set_ylabel(f"{fit.name} time [ms]")
    ax.set_title(f"{fit.name} time over memory")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    return _save(fig, ax, out / f"{fit.bench}-{fit.name}.png")


def write_plots(report: BenchReport, out: Path) -> list[Path]:
    """Write every plot under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    benches = list(dict.fromkeys(m.bench for m in report.measurements))
    for bench in benches:
        rows = [m for m in report.measurements if m.bench == bench and m.summary is not None]
        units = list(dict.fromkeys(m.unit for m in rows))
        for unit in units:  # one chart per unit: bars of different units share no axis
            name = bench if len(units) == 1 else f"{bench}-{re.sub(r'[^A-Za-z0-9]+', '', unit)}"
            written.append(_bars(name, [m for m in rows if m.unit == unit], out))
    for fit in report.fits:
        if fit.points:
            written.append(_fit_plot(fit, out))
    return written
