"""Impact on other workloads (thesis 6.2.3): 7-Zip's LZMA benchmark beside a tracked process.

7z runs single-threaded (``-mmt1``) while wpp-synth allocates, fills and frees memory in
a loop beside it: untracked (``beside untracked``, the baseline), then tracked in every
mode (``beside lazy``, ``beside batched``, ``beside eager``). The ratio against the
untracked load isolates what WPP costs a neighbour (the SMI rendezvous included), not
what sharing the machine with a busy process costs. ``alone`` (no load at all) stays as
an extra row: beside untracked / alone is that sharing cost.

In the seed every page the tracked process touched raised an SMI that stopped all
cores, so the neighbour fell to ~10 % of its throughput; its neighbour ran on another
core of a 20-thread machine. So here, when the guest has two or more CPUs, 7z is pinned
to CPU 0 and the load to CPU 1 (``taskset``); with one CPU they share it, and each row
says so. All variants alternate within every repetition, so drifting load on a shared
host hits them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hil.bench import guest, remote
from hil.bench.results import BenchReport, Measurement
from hil.core.errors import HilError

BENCH = "neighbours"
ALONE = "alone"
BASELINE = f"beside {guest.UNTRACKED}"
OUT = "/tmp/bench-load.out"
SEED_RATIO = 0.10  # fig. 6.3: "only about 10 % of the control group", beside eager tracking
LOAD_CYCLES = 1_000_000  # runs until stopped
NEIGHBOUR_CPU, LOAD_CPU = 0, 1


def variants(modes: Sequence[str]) -> list[str]:
    """Row variants in run order: alone, the untracked baseline, then each mode."""
    return [ALONE, BASELINE, *(f"beside {m}" for m in modes)]


def placement(cpus: int | None) -> tuple[int | None, int | None, str]:
    """CPUs for 7z and the load, and the note the rows carry about it (`cpus` None: the
    guest could not say; nothing is pinned)."""
    if cpus is None:
        return None, None, "CPU count unknown (nproc failed): 7z and the allocator not pinned"
    if cpus >= 2:
        return NEIGHBOUR_CPU, LOAD_CPU, (
            f"{cpus} CPUs: 7z pinned to CPU {NEIGHBOUR_CPU}, the allocator to CPU {LOAD_CPU}")
    return None, None, ("1 CPU: 7z and the allocator share it (nothing pinned), so beside "
                        "untracked is far below alone with no tracking at all; the ratios "
                        "to beside untracked are what WPP adds")


def _mode(variant: str) -> str | None:
    """The tracking mode of a ``beside <mode>`` variant; None for alone and untracked."""
    if variant in (ALONE, BASELINE):
        return None
    return variant.removeprefix("beside ")


def run(target: Any, report: BenchReport, *, dict_log2: int, reps: int,
        modes: Sequence[str], load_mib: int, time_ms: int | None = None,
        wpp_missing: str | None = None,
        step: Callable[[str], None] = lambda _m: None) -> None:
    try:
        cpus: int | None = guest.parse_nproc(remote.run(target, guest.NPROC, timeout=30))
    except HilError:
        cpus = None
    cpu_7z, cpu_load, note = placement(cpus)
    order = variants(modes)
    rows: dict[tuple[str, str], Measurement] = {}
    for phase in ("compress", "decompress"):
        for v in order:
            mode = _mode(v)
            rows[phase, v] = report.add(Measurement(
                BENCH, f"7z {phase} d{dict_log2}", v, "throughput", "KiB/s",
                baseline=BASELINE if mode else None, higher_is_better=True,
                seed=SEED_RATIO if mode == "eager" else None,
                skipped=wpp_missing if mode else None, note=note))
    cmd = guest.pinned(cpu_7z, guest.sevenzip_bench(dict_log2, time_ms=time_ms))
    load = guest.synth(load_mib, LOAD_CYCLES)
    for rep in range(1, reps + 1):
        for v in order:
            if rows["compress", v].skipped and rows["compress", v].samples == []:
                continue
            step(f"7z {v} (run {rep}/{reps})")
            pid = 0
            mode = _mode(v)
            try:
                if v != ALONE:
                    pid = _start_load(target, mode, cpu_load, load)
                res = guest.parse_7z(remote.run(target, cmd, timeout=1800))
                rows["compress", v].samples.append(res.compress_kib_s[dict_log2])
                rows["decompress", v].samples.append(res.decompress_kib_s[dict_log2])
            except (HilError, KeyError) as exc:
                for phase in ("compress", "decompress"):
                    rows[phase, v].skipped = f"{type(exc).__name__}: {exc}"
            finally:
                if pid:
                    remote.stop(target, [pid])


def _start_load(target: Any, mode: str | None, cpu: int | None, load: str) -> int:
    """Start the allocator on `cpu`, untracked (`mode` None) or tracked in `mode`; its pid."""
    pid = remote.start(target, mode or guest.UNTRACKED, load, OUT, cpu=cpu)
    if mode is not None:
        remote.wait_tracked(target)
    return pid
