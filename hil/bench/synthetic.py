"""The seed's synthetic benchmark (thesis 6.2.1): mmap / fill / munmap N MiB, 10 cycles.

Every repetition runs the untracked baseline and each tracking mode back to back, so
load on the shared machine drifts over all variants alike. The time is wpp-synth's own
(the loop only), so the starter's one-time cost the seed included (~150 ms) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hil.bench import guest, remote
from hil.bench.results import BenchReport, Measurement
from hil.core.errors import HilError

BENCH = "synthetic"
# Seed (thesis fig. 6.1): the slowdown settles "around 35x" as the size grows.
SEED_RATIO = {100: 35.0, 500: 35.0}


def run(target: Any, report: BenchReport, *, sizes: Sequence[int], variants: Sequence[str],
        reps: int, cycles: int = 10, wpp_missing: str | None = None,
        step: Callable[[str], None] = lambda _m: None) -> None:
    rows: dict[tuple[int, str], Measurement] = {}
    for size in sizes:
        for v in variants:
            rows[size, v] = report.add(Measurement(
                BENCH, f"{size} MiB", v, f"{cycles} cycles", "ms",
                baseline=None if v == guest.UNTRACKED else guest.UNTRACKED,
                seed=SEED_RATIO.get(size) if v != guest.UNTRACKED else None,
                skipped=wpp_missing if v != guest.UNTRACKED else None))
    for rep in range(1, reps + 1):
        for size in sizes:
            for v in variants:
                m = rows[size, v]
                if m.skipped:
                    continue
                step(f"synthetic {size} MiB {v} (run {rep}/{reps})")
                try:
                    out = remote.run(target, guest.run_as(v, guest.synth(size, cycles)),
                                     timeout=900)
                    m.samples.append(guest.parse_synth(out))
                except HilError as exc:
                    m.skipped = str(exc)
