"""The nights' history: one JSON line per night, and benchmark regressions judged against it.

Each night appends its record to ``history.jsonl``: the steps, the test counts and every
benchmark row's number. A row's number is its ratio against its same-run baseline where it
has one (tracked / untracked: machine noise cancels), else its median. Tonight is a
regression when it is worse than the previous nights' median by more than the threshold
(default 10 %) *and* by more than twice the nights' own relative spread (IQR / median), so
a benchmark that scatters by 15 % from night to night does not cry wolf at 11 %.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WINDOW = 10  # previous nights a judgement looks at


def bench_numbers(bench_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {value, higher_is_better, kind}}`` for every measured row of a bench.json."""
    out: dict[str, dict[str, Any]] = {}
    for row in bench_json.get("results", []):
        key = f"{row['bench']}/{row['case']}/{row['variant']}/{row['metric']}"
        if row.get("ratio"):
            out[key] = {"value": row["ratio"]["median"], "kind": "ratio",
                        "higher_is_better": bool(row.get("higher_is_better"))}
        elif row.get("summary"):
            out[key] = {"value": row["summary"]["median"], "kind": row.get("unit", ""),
                        "higher_is_better": bool(row.get("higher_is_better"))}
    for fit in bench_json.get("fits", []):
        if fit.get("gib_per_s"):
            out[f"{fit['bench']}/fit/{fit['name']}/GiB/s"] = {
                "value": fit["gib_per_s"], "kind": "GiB/s", "higher_is_better": True}
    return out


def read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    nights = []
    for line in path.read_text().splitlines():
        if line.strip():
            nights.append(json.loads(line))
    return nights


def append(path: Path, night: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(night, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Regression:
    key: str
    tonight: float
    baseline: float  # median of the previous nights
    change: float  # relative, signed so that positive is worse
    allowed: float  # the threshold it exceeded (max of threshold and 2x spread)
    nights: int

    def describe(self) -> str:
        return (f"{self.key}: {self.tonight:.4g} vs {self.baseline:.4g} over {self.nights} "
                f"nights ({self.change * 100:+.1f}% worse, allowed {self.allowed * 100:.1f}%)")


def _spread(values: list[float]) -> float:
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    med = statistics.median(values)
    return abs(q[2] - q[0]) / abs(med) if med else 0.0


def regressions(tonight: dict[str, dict[str, Any]], previous: Iterable[dict[str, Any]],
                threshold: float = 0.10) -> list[Regression]:
    """Rows of tonight's bench numbers that got worse than the previous nights allow."""
    past = [n.get("bench", {}) for n in previous][-WINDOW:]
    found = []
    for key, now in sorted(tonight.items()):
        values = [float(p[key]["value"]) for p in past if key in p]
        if not values:
            continue
        base = statistics.median(values)
        if base == 0:
            continue
        rel = (float(now["value"]) - base) / abs(base)
        worse = -rel if now["higher_is_better"] else rel
        allowed = max(threshold, 2 * _spread(values))
        if worse > allowed:
            found.append(Regression(key, float(now["value"]), base, worse, allowed,
                                    len(values)))
    return found


def plot(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One PNG per benchmark: every row's number over the nights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    labels = [n.get("date", str(i)) for i, n in enumerate(history)]
    for i, night in enumerate(history):
        for key, num in night.get("bench", {}).items():
            bench = key.split("/", 1)[0]
            series.setdefault(bench, {}).setdefault(key, []).append((i, float(num["value"])))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for bench, rows in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for key, points in sorted(rows.items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=key.split("/", 1)[-1][:60])
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{bench}: each row over the nights (ratio vs baseline, or median)")
        ax.legend(fontsize=6, loc="best")
        fig.tight_layout()
        path = out_dir / f"{bench}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
