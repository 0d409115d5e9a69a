"""Impact on other workloads (thesis 6.2.3): 7-Zip's LZMA benchmark beside a tracked process.

7z runs single-threaded (``-mmt1``) alone, then while wpp-synth allocates and frees
memory in a loop as the tracked process. In the seed every page the tracked process
touched raised an SMI that stopped all cores, so the neighbour fell to ~10 % of its
throughput. Alone and loaded runs alternate per repetition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hil.bench import guest, remote
from hil.bench.results import BenchReport, Measurement
from hil.errors import HilError

BENCH = "neighbours"
ALONE = "alone"
OUT = "/tmp/bench-load.out"
SEED_RATIO = 0.10  # fig. 6.3: "only about 10 % of the control group"
LOAD_CYCLES = 1_000_000  # runs until stopped


def run(target: Any, report: BenchReport, *, dict_log2: int, reps: int, mode: str,
        load_mib: int, wpp_missing: str | None = None,
        step: Callable[[str], None] = lambda _m: None) -> None:
    loaded = f"beside {mode}"
    rows: dict[tuple[str, str], Measurement] = {}
    for phase in ("compress", "decompress"):
        for v in (ALONE, loaded):
            rows[phase, v] = report.add(Measurement(
                BENCH, f"7z {phase} d{dict_log2}", v, "throughput", "KiB/s",
                baseline=ALONE if v != ALONE else None, higher_is_better=True,
                seed=SEED_RATIO if v != ALONE else None,
                skipped=wpp_missing if v != ALONE else None))
    cmd = guest.sevenzip_bench(dict_log2)
    for rep in range(1, reps + 1):
        for v in (ALONE, loaded):
            if rows["compress", v].skipped and rows["compress", v].samples == []:
                continue
            step(f"7z {v} (run {rep}/{reps})")
            pid = 0
            try:
                if v != ALONE:
                    pid = remote.start(target, mode, guest.synth(load_mib, LOAD_CYCLES), OUT)
                    remote.wait_tracked(target)
                res = guest.parse_7z(remote.run(target, cmd, timeout=1800))
                rows["compress", v].samples.append(res.compress_kib_s[dict_log2])
                rows["decompress", v].samples.append(res.decompress_kib_s[dict_log2])
            except (HilError, KeyError) as exc:
                for phase in ("compress", "decompress"):
                    rows[phase, v].skipped = f"{type(exc).__name__}: {exc}"
            finally:
                if pid:
                    remote.stop(target, [pid])
