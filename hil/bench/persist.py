"""Persist and restore time over allocated memory (thesis 6.3, fig. 6.4), and the cycle.

Each size runs one full `hil.cycle` cycle of wpp-counter holding a buffer of that many
MiB: persist (the firmware's ``wpp: persist ... time_us= page_bytes= meta_bytes=`` line,
read from CBMEM before the cut wipes it), power cut, boot, recreate (``wpp: restore``).
A least-squares fit over the firmware's own durations splits the time into a fixed
overhead and bytes per second, as the seed reported (160 ms + 1.3 GiB/s). The same
cycles time the orchestrator itself: boot and the full cycle, by the wall clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from hil.bench import remote
from hil.bench.results import BenchReport, Fit, Measurement
from hil.bench.stats import linear_fit
from hil.cycle import CycleRunner
from hil.errors import HilError

BENCH = "persist"
ORCH = "orchestrator"
SEED_FIXED_MS = 160.0
SEED_GIB_S = 1.3
# Room kept on the persistent device for the snapshot's header, metadata (up to 32 MiB in
# the ABI), region and page-list sections and the counter's own stack/binary pages.
DEVICE_RESERVE_MIB = 64


def max_size_mib(pdev_bytes: int | None) -> int | None:
    """Largest buffer whose pages fit on the persistent device (None: unknown size)."""
    if not pdev_bytes:
        return None
    return max(1, (pdev_bytes >> 20) - DEVICE_RESERVE_MIB)


class _RecordingRunner(CycleRunner):
    """A `CycleRunner` that keeps the whole firmware event, not only its ``time_us``,
    since page and metadata bytes are read from the same line (CBMEM dies with the cut)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fw_events: dict[str, dict[str, Any]] = {}

    def _firmware_us(self, event: str) -> int | None:
        try:
            events = self.target.cbmem.events(event, last_boot=True)
        except HilError:
            return None
        done = [e for e in events if isinstance(e.get("time_us"), int)]
        if not done:
            return None
        self.fw_events[event] = {k: done[-1].get(k) for k in
                                 ("status", "time_us", "page_bytes", "meta_bytes", "pages")}
        return int(done[-1].get("time_us"))


def _seed(name: str) -> tuple[float | None, float | None]:
    """The seed measured persisting only (fig. 6.4); it gives no restore numbers."""
    return (SEED_FIXED_MS, SEED_GIB_S) if name == "persist" else (None, None)


def _per_size_medians(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One (bytes, time) point per buffer size, the medians of its repetitions: a single
    slow or fast run (TCG under load) must not tilt the line, and every size counts once.
    Repetitions of a size copy a few pages more or less, so sizes are grouped by MiB."""
    groups: dict[int, list[tuple[float, float]]] = {}
    for b, t in points:
        groups.setdefault(round(b / 2**20), []).append((b, t))
    return [(statistics.median(b for b, _ in g), statistics.median(t for _, t in g))
            for _, g in sorted(groups.items())]


def _fit(name: str, points: list[tuple[float, float]]) -> Fit:
    """Fixed overhead + bandwidth, fitted to the per-size medians with relative weights
    (sizes span three decades; see `linear_fit`); `points` keeps every run for the plot."""
    fit = None
    note = ""
    try:
        med = _per_size_medians(points)
        fit = linear_fit([b for b, _ in med], [t for _, t in med], relative=True)
    except HilError as exc:
        note = str(exc)
    return Fit(BENCH, name, fit, points, *_seed(name), note)


def run(target: Any, report: BenchReport, *, sizes: Sequence[int], mode: str,
        reps: int = 1, wpp_missing: str | None = None,
        step: Callable[[str], None] = lambda _m: None) -> None:
    boot = report.add(Measurement(ORCH, "boot (power on to SSH)", report.board, "boot", "s"))
    cycle = report.add(Measurement(ORCH, "full cycle (hil.cycle)", report.board, "cycle", "s"))
    if target.last_boot is not None:
        boot.samples.append(target.last_boot.total_s)
    if wpp_missing:
        cycle.skipped = wpp_missing
        report.fits += [Fit(BENCH, n, None, [], *_seed(n), wpp_missing)
                        for n in ("persist", "restore")]
        return
    points: dict[str, list[tuple[float, float]]] = {"persist": [], "restore": []}
    for size in sizes:
        rows = {name: report.add(Measurement(BENCH, f"{name} {size} MiB", mode, f"{name} time",
                                             "ms"))
                for name in ("persist", "restore")}
        meta = report.add(Measurement(BENCH, f"metadata {size} MiB", mode, "metadata copied",
                                      "KiB"))
        for rep in range(reps):
            step(f"persist/restore cycle with a {size} MiB buffer ({mode}, run {rep + 1}/{reps})")
            _one_cycle(target, size, mode, rows, meta, boot, cycle, points)
    report.fits += [_fit(name, pts) for name, pts in points.items()]


def _one_cycle(target: Any, size: int, mode: str, rows: dict[str, Measurement],
               meta: Measurement, boot: Measurement, cycle: Measurement,
               points: dict[str, list[tuple[float, float]]]) -> None:
    """One fresh process of `size` MiB: persist -> cut -> boot -> recreate, its firmware
    times added to `rows` and its (bytes, time) to the fit's `points`."""
    runner = _RecordingRunner(target, mode=mode, buffer_mib=size, run_s=1.0)
    try:
        runner.start()
        result = runner.cycle(1)
    except HilError as exc:
        for m in (*rows.values(), meta):
            m.skipped = m.skipped or str(exc)
        return
    finally:
        _stop_recreated(target)
    boot.samples += [p.wall_s for p in result.phases if p.name == "boot"]
    if result.error:
        for m in (*rows.values(), meta):
            m.skipped = m.skipped or result.error
        return
    cycle.samples.append(sum(p.wall_s for p in result.phases))
    for name, m in rows.items():
        ev = runner.fw_events.get(name)
        if ev is None or ev.get("status") not in (0, None):
            m.skipped = m.skipped or f"no successful 'wpp: {name}' line in cbmem"
            continue
        m.samples.append(ev["time_us"] / 1000.0)
        if isinstance(ev.get("page_bytes"), int):
            points[name].append((float(ev["page_bytes"]), float(ev["time_us"])))
        if name == "persist" and isinstance(ev.get("meta_bytes"), int):
            meta.samples.append(ev["meta_bytes"] / 1024.0)


def _stop_recreated(target: Any) -> None:
    """The recreated counter keeps the single tracking slot: free it for the next size."""
    try:
        if target.is_on() and target.shell.is_reachable():
            remote.stop(target, [])
    except HilError:
        pass
