"""Persist and restore time over allocated memory (thesis 6.3, fig. 6.4), and the cycle.

Each size runs one full `hil.wpp.experiment` cycle of wpp-counter holding a buffer of that many
MiB: persist (the firmware's ``wpp: persist ... time_us= page_bytes= meta_bytes=`` line,
read from CBMEM before the cut wipes it), power cut, boot, recreate (``wpp: restore``).
A least-squares fit over the firmware's own durations splits the time into a fixed
overhead and bytes per second, as the seed reported (160 ms + 1.3 GiB/s). The same
cycles time the orchestrator itself: boot and the full cycle, by the wall clock.

Page bandwidth, against what the machine itself can do (case ``page bandwidth``, GiB/s):

- ``guest memcpy`` (the baseline): wpp-memcpy in the guest, first, in the same run on
  the same target: the C library's memcpy between two pre-touched buffers of each
  `memcpy_sizes` MiB, one sample per timed copy. The same probe's ``rep movsb`` and
  ``rep movsq`` (the routines an SMM copy loop would use) go into a note.
- ``persist``: the firmware's ``page_bytes / pages_us`` of each cycle: ``pages_us`` is
  the SMM time from the end of the metadata and region sections to the completion
  marker: page list, every page copied (runs of contiguous frames) and CRC'd into the
  persistent device, the header. The invalidated marker, metadata, regions and SMI entry
  are outside it (the fit's fixed part holds them).
- ``recreate``: the kernel's ``recreated pid`` line: ``pages * 4 KiB / fill``, where
  ``fill`` is every GET_PAGES call (SMM writes each page into a new frame of the process,
  or into a buffer where the firmware refuses frames) plus mapping the frames (zero pages
  are checked, not mapped). The firmware's RESTORE (verifying the snapshot), mapping the
  regions and the threads are outside it. The kernel prints milliseconds.

Only cycles with at least `BANDWIDTH_MIN_MIB` of pages give a bandwidth sample: in
shorter copies the per-call setup and the millisecond resolution weigh in.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from hil.bench import guest, remote
from hil.bench.results import BenchReport, Fit, Measurement
from hil.bench.stats import linear_fit
from hil.core.errors import HilError
from hil.wpp.experiment import CycleRunner

BENCH = "persist"
ORCH = "orchestrator"
SEED_FIXED_MS = 160.0
SEED_GIB_S = 1.3
# Room kept on the persistent device for the snapshot's header, metadata (up to 32 MiB in
# the ABI), region and page-list sections and the counter's own stack/binary pages.
DEVICE_RESERVE_MIB = 64
BANDWIDTH = "page bandwidth"
MEMCPY = "guest memcpy"
BANDWIDTH_MIN_MIB = 4
PAGE = 4096


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
        self.check: dict[str, int] = {}

    def _firmware_us(self, event: str) -> int | None:
        try:
            events = self.target.cbmem.events(event, last_boot=True)
        except HilError:
            return None
        done = [e for e in events if isinstance(e.get("time_us"), int)]
        if not done:
            return None
        self.fw_events[event] = {k: done[-1].get(k) for k in
                                 ("status", "time_us", "page_bytes", "meta_bytes", "pages",
                                  "pages_us")}
        if event == "persist":  # the OS still runs: the kernel's page-table check, too
            self.check = _read_check(self.target)
        return int(done[-1].get("time_us"))


def _read_check(target: Any) -> dict[str, int]:
    """``/sys/kernel/wpp/check`` after a power-loss procedure: the page-table check's time
    (``last_us``) and what it corrected; empty on a kernel without the check."""
    res = target.shell.run("cat /sys/kernel/wpp/check", timeout=30, check=False)
    pairs = (line.split() for line in res.stdout.splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


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


def bandwidth_rows(report: BenchReport, wpp_missing: str | None) -> dict[str, Measurement]:
    """The ``page bandwidth`` rows: guest memcpy (baseline), persist, recreate."""
    def row(variant: str) -> Measurement:
        tracked = variant != MEMCPY
        return report.add(Measurement(
            BENCH, BANDWIDTH, variant, BANDWIDTH, "GiB/s", higher_is_better=True,
            baseline=MEMCPY if tracked else None,
            seed_note=f"{SEED_GIB_S} GiB/s" if variant == "persist" else "",
            skipped=wpp_missing if tracked else None))
    return {v: row(v) for v in (MEMCPY, "persist", "recreate")}


def measure_memcpy(target: Any, report: BenchReport, row: Measurement, sizes: Sequence[int],
                   reps: int, step: Callable[[str], None] = lambda _m: None) -> None:
    """Guest copy bandwidth: memcpy samples into `row`, the rep movs medians into a note."""
    others: dict[str, list[float]] = {}
    for size in sizes:
        step(f"guest copy bandwidth, 2 x {size} MiB ({reps} copies per routine)")
        try:
            got = guest.parse_memcpy(remote.run(target, guest.memcpy_probe(size, reps),
                                                timeout=600))
        except HilError as exc:
            row.skipped = row.skipped or str(exc)
            continue
        row.samples += got.pop("memcpy")
        for method, values in got.items():
            others.setdefault(method, []).extend(values)
    if others and row.samples:
        # three significant digits: under TCG rep movsb is two orders below memcpy
        cells = [f"memcpy {statistics.median(row.samples):.3g}"] + [
            f"rep {m} {statistics.median(v):.3g}" for m, v in sorted(others.items())]
        report.notes.append(f"guest copy routines ({'/'.join(map(str, sizes))} MiB, median "
                            f"GiB/s): " + ", ".join(cells))


def run(target: Any, report: BenchReport, *, sizes: Sequence[int], mode: str,
        reps: int = 1, memcpy_sizes: Sequence[int] = (64,), memcpy_reps: int = 3,
        wpp_missing: str | None = None,
        step: Callable[[str], None] = lambda _m: None) -> None:
    boot = report.add(Measurement(ORCH, "boot (power on to SSH)", report.board, "boot", "s"))
    # the case name is a key of the nightly history: it keeps the old module's name
    case = "full cycle (hil.cycle)"
    cycle = report.add(Measurement(ORCH, case, report.board, "cycle", "s"))
    if target.last_boot is not None:
        boot.samples.append(target.last_boot.total_s)
    bw = bandwidth_rows(report, wpp_missing)
    measure_memcpy(target, report, bw[MEMCPY], memcpy_sizes, memcpy_reps, step)
    if wpp_missing:
        cycle.skipped = wpp_missing
        if not boot.samples:  # an already booted board, and no cycle to time one
            boot.skipped = wpp_missing
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
        check = report.add(Measurement(
            BENCH, f"page-table check {size} MiB", mode, "check at power loss", "ms",
            note="the kernel's final check of the firmware's lists against the stopped "
                 "task's page tables (/sys/kernel/wpp/check last_us), part of persist"))
        for rep in range(reps):
            step(f"persist/restore cycle with a {size} MiB buffer ({mode}, run {rep + 1}/{reps})")
            _one_cycle(target, size, mode, rows, meta, boot, cycle, points, bw, check)
    report.fits += [_fit(name, pts) for name, pts in points.items()]
    for name in ("persist", "recreate"):
        if not bw[name].samples and not bw[name].skipped:
            bw[name].skipped = (f"no cycle copied {BANDWIDTH_MIN_MIB} MiB of pages or more "
                                f"(sizes {', '.join(map(str, sizes))} MiB)")


def _one_cycle(target: Any, size: int, mode: str, rows: dict[str, Measurement],
               meta: Measurement, boot: Measurement, cycle: Measurement,
               points: dict[str, list[tuple[float, float]]],
               bw: dict[str, Measurement], check: Measurement) -> None:
    """One fresh process of `size` MiB: persist -> cut -> boot -> recreate, its firmware
    times added to `rows`, its (bytes, time) to the fit's `points` and its page
    bandwidths to `bw`."""
    runner = _RecordingRunner(target, mode=mode, buffer_mib=size, run_s=1.0)
    recreated: guest.Recreated | str | None = None
    try:
        runner.start()
        result = runner.cycle(1)
        if not result.error:
            recreated = _kernel_recreate_report(target)
    except HilError as exc:
        for m in (*rows.values(), meta, bw["persist"], bw["recreate"]):
            m.skipped = m.skipped or str(exc)
        return
    finally:
        _stop_recreated(target)
    boot.samples += [p.wall_s for p in result.phases if p.name == "boot"]
    if result.error:
        for m in (*rows.values(), meta, bw["persist"], bw["recreate"]):
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
    _bandwidth_samples(runner.fw_events.get("persist"), recreated, bw)
    if "last_us" in runner.check:
        check.samples.append(runner.check["last_us"] / 1000.0)
    elif not check.samples:
        check.skipped = "the kernel has no /sys/kernel/wpp/check (no power-loss check)"


def _kernel_recreate_report(target: Any) -> guest.Recreated | str:
    """The kernel's report of the recreation just done, or why it could not be read."""
    try:
        return guest.parse_recreated(remote.run(target, guest.KERNEL_RECREATE_LOG, timeout=30))
    except HilError as exc:
        return str(exc)


def persist_gib_s(event: dict[str, Any] | None) -> float | None:
    """Page bandwidth of one persist from the firmware's line; None if too small or
    incomplete (no ``pages_us``: a firmware older than that field)."""
    if not event or event.get("status") not in (0, None):
        return None
    nbytes, us = event.get("page_bytes"), event.get("pages_us")
    if not isinstance(nbytes, int) or not isinstance(us, int) or us <= 0:
        return None
    if nbytes < BANDWIDTH_MIN_MIB << 20:
        return None
    return nbytes / (us / 1e6) / 2**30


def recreate_gib_s(rec: guest.Recreated) -> float | None:
    """Page bandwidth of one recreation from the kernel's line; None if too small."""
    nbytes = rec.pages * PAGE
    if nbytes < BANDWIDTH_MIN_MIB << 20 or rec.fill_ms <= 0:
        return None
    return nbytes / (rec.fill_ms / 1e3) / 2**30


def _bandwidth_samples(persist_ev: dict[str, Any] | None,
                       recreated: guest.Recreated | str | None,
                       bw: dict[str, Measurement]) -> None:
    if persist_ev is not None and persist_ev.get("pages_us") is None:
        bw["persist"].skipped = bw["persist"].skipped or \
            "the firmware's 'wpp: persist' line has no pages_us"
    if persist_ev is not None and (v := persist_gib_s(persist_ev)) is not None:
        bw["persist"].samples.append(v)
        # the latest cycle is the largest size: where the time goes, for the reader
        bw["persist"].note = (
            f"largest: {persist_ev['page_bytes'] / 2**20:.1f} MiB of pages in "
            f"{persist_ev['pages_us'] / 1000:.1f} ms of {_ms(persist_ev.get('time_us'))} "
            f"in SMM")
    if isinstance(recreated, str):
        bw["recreate"].skipped = bw["recreate"].skipped or recreated
    elif recreated is not None and (v := recreate_gib_s(recreated)) is not None:
        bw["recreate"].samples.append(v)
        bw["recreate"].note = (
            f"largest: {recreated.pages * PAGE / 2**20:.1f} MiB of pages, fill "
            f"{recreated.fill_ms:.0f} ms, of which GET_PAGES {recreated.get_pages_ms:.0f} ms")


def _ms(us: Any) -> str:
    return f"{us / 1000:.1f} ms" if isinstance(us, int) else "? ms"


def _stop_recreated(target: Any) -> None:
    """The recreated counter keeps the single tracking slot: free it for the next size."""
    try:
        if target.is_on() and target.shell.is_reachable():
            remote.stop(target, [])
    except HilError:
        pass
