"""One WPP power-loss cycle on any board: start tracked, trigger, cut, boot, recreate, verify.

This is the experiment the whole project exists for, written once against `Target` so
the twin in CI and the MSI board at night run the same steps. Each phase is timed by the
wall clock here and, where the firmware reports it, by its own ``wpp:`` durations (read
from ``cbmem`` before the cut for persisting — CBMEM lives in RAM and dies with it — and
after the recreation for restoring).

The probe program is ``wpp-counter``: every line it prints carries the counter, a buffer
checksum verdict, register/FPU values and a file offset, so "the process continued
exactly where it stopped" is a comparison of two lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from hil.core.errors import HilError
from hil.core.timeout import wait_for
from hil.wpp.session import WppSession

MODES = ("eager", "batched", "lazy")
COUNTER_BIN = "/usr/bin/wpp-counter"
MODE_PARAM = "/sys/module/wpp/parameters/mode"
TRACKED_PID = "/sys/kernel/wpp/tracked_pid"
TRIGGER = "/dev/wpp-trigger"
START_S = 30.0  # the counter's first line, plus START_S_PER_MIB per MiB of its buffer
START_S_PER_MIB = 10.0
LOG_LINE = 64  # wpp-counter's fixed log-line width: the log's offset is n * LOG_LINE

_COUNTER_LINE = re.compile(r"^wpp-counter: n=(?P<n>\d+) (?P<rest>.*)$")
CHECK_FIELDS = ("buf", "regs", "fd", "map", "state")


@dataclass(frozen=True)
class CounterLine:
    """One iteration line of wpp-counter, e.g. ``wpp-counter: n=42 pid=97 sum=.. buf=ok``."""

    n: int
    fields: dict[str, str]
    raw: str

    def get(self, key: str) -> str | None:
        return self.fields.get(key)

    @property
    def pid(self) -> int:
        return int(self.fields["pid"])

    @property
    def sum(self) -> str | None:
        """The checksum of the PRNG buffer (constant for a run)."""
        return self.fields.get("sum")

    @property
    def fp(self) -> float:
        """The value that lives only in x87/SSE registers across each sleep."""
        return float(self.fields["fp"])

    @property
    def off(self) -> int:
        return int(self.fields["off"])

    @property
    def checks(self) -> dict[str, str | None]:
        """The counter's own verdicts: buf, regs, fd, map, state."""
        return {k: self.fields.get(k) for k in CHECK_FIELDS}

    @property
    def healthy(self) -> bool:
        """Every self-check the counter makes passed in this iteration."""
        f = self.fields
        return (
            f.get("buf") in ("ok", "skip", "na")
            and f.get("regs") == "ok"
            and f.get("fd") == "ok"
            and f.get("map") in ("ok", "none", "na", None)
            and f.get("state") == "ok"
        )


def parse_counter(text: str) -> list[CounterLine]:
    """All iteration lines of wpp-counter output, in order (other lines ignored)."""
    lines = []
    for raw in text.splitlines():
        m = _COUNTER_LINE.match(raw.strip())
        if not m:
            continue
        fields = dict(tok.split("=", 1) for tok in m["rest"].split() if "=" in tok)
        lines.append(CounterLine(int(m["n"]), fields, raw.strip()))
    return lines


def harmonic(n: int) -> float:
    """The counter's FPU value after n iterations: the sum of 1/k, added in order."""
    s = 0.0
    for k in range(1, n + 1):
        s += 1.0 / k
    return s


def _fp_exact(line: CounterLine) -> bool:
    try:
        return line.fp == harmonic(line.n)
    except (KeyError, ValueError):
        return False


def continuation_checks(before: CounterLine, after: CounterLine, *, pid: int | None = None,
                        verify_every: int = 1, buffer: bool = True,
                        line_len: int = LOG_LINE) -> dict[str, bool]:
    """What must hold between a line and the next one, across a recreation or not.

    The process was frozen after printing `before`, so the next iteration it prints must
    be exactly ``n + 1`` of the same process (`pid`: the recreated pid when the original
    was taken; by default `before`'s), with the same buffer checksum, registers and the
    exact FPU value (the harmonic sum, bit for bit) and the log file's offset. ``buf=skip``
    is accepted only from a run started with ``--verify-every K`` (K > 1), the one mode in
    which the counter legitimately skips verifying; ``buf=na`` only from a run without a
    buffer (`buffer` False).
    """
    expected_pid = pid if pid is not None else before.get("pid")
    buf_ok = ({"ok", "skip"} if verify_every > 1 else {"ok"}) if buffer else {"na"}
    return {
        "counter continues at n+1": after.n == before.n + 1,
        "same process (pid)": after.get("pid") == str(expected_pid),
        "buffer checksum intact": after.get("buf") in buf_ok
        and after.get("sum") == before.get("sum"),
        "registers and FPU/SIMD intact": after.get("regs") == "ok" and _fp_exact(after),
        "file offset intact": after.get("fd") == "ok"
        and after.get("off") == str(after.n * line_len),
        "private mapping intact": after.get("map") in ("ok", "none", None),
        "state file": after.get("state") == "ok",
    }


def failed_checks(checks: dict[str, bool]) -> list[str]:
    return [name for name, ok in checks.items() if not ok]


_RECREATED = re.compile(r"^wpp-recreate: recreated \S+ pid (\d+) as pid (\d+) ", re.M)


def recreated_pids(report: str) -> tuple[int, int] | None:
    """(original pid, pid now) from wpp-recreate's report line; they differ only when the
    original pid was taken (the report then says by whom)."""
    m = _RECREATED.search(report)
    return (int(m[1]), int(m[2])) if m else None


@dataclass
class Phase:
    name: str
    wall_s: float
    firmware_us: int | None = None
    detail: str = ""


@dataclass
class CycleReport:
    cycle: int
    mode: str
    before: CounterLine | None = None
    after: CounterLine | None = None
    phases: list[Phase] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle,
            "mode": self.mode,
            "ok": self.ok,
            "error": self.error,
            "before": self.before.raw if self.before else None,
            "after": self.after.raw if self.after else None,
            "checks": self.checks,
            "phases": [asdict(p) for p in self.phases],
        }


def format_table(reports: list[CycleReport]) -> str:
    """A phase table: one row per phase, one column per cycle (wall s / firmware ms)."""
    if not reports:
        return "(no cycles)"
    names: list[str] = []
    for r in reports:
        names += [p.name for p in r.phases if p.name not in names]
    head = f"{'phase':<14}" + "".join(f"{'cycle ' + str(r.cycle) + ' ' + r.mode:>26}"
                                      for r in reports)
    rows = [head, "-" * len(head)]
    for name in names:
        cells = []
        for r in reports:
            p = next((p for p in r.phases if p.name == name), None)
            if p is None:
                cells.append(f"{'-':>26}")
                continue
            fw = f" (fw {p.firmware_us / 1000:.1f} ms)" if p.firmware_us is not None else ""
            cells.append(f"{p.wall_s:>9.2f} s{fw:>16}")
        rows.append(f"{name:<14}" + "".join(cells))
    rows.append(f"{'result':<14}" + "".join(
        f"{'OK' if r.ok else 'FAILED':>26}" for r in reports))
    return "\n".join(rows)


class CycleRunner:
    """Runs persist -> cut -> boot -> recreate cycles of one program on one target.

    The kernel-facing steps go through `hil.wpp.session.WppSession`; this adds the phase
    timings and the continuation checks. `data_dir` must be on storage that survives
    the cut (the twin's /data disk, the board's disk): the counter's open files live
    there and are reopened by the recreator. `on_step` receives human-readable progress
    (the demo prints it).
    """

    def __init__(
        self,
        target: Any,
        *,
        mode: str = "eager",
        data_dir: str = "/data",
        buffer_mib: int = 1,
        period_ms: int = 200,
        run_s: float = 3.0,
        hold_s: float | None = None,
        on_step: Callable[[str], None] | None = None,
        after_cut: Callable[[], None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise HilError(f"unknown tracking mode {mode!r}", f"use one of {', '.join(MODES)}")
        self.target = target
        self.mode = mode
        self.data_dir = data_dir.rstrip("/")
        self.buffer_mib = buffer_mib
        self.period_ms = period_ms
        self.run_s = run_s
        self.hold_s = hold_s
        self.on_step = on_step or (lambda _msg: None)
        self.after_cut = after_cut  # e.g. inspect the persistent device while the board is off
        self.session = WppSession(target, out_dir=self.data_dir)
        self.program: Any = None

    # -- helpers ---------------------------------------------------------------------

    def _sh(self, cmd: str, timeout: float = 60.0, check: bool = True) -> Any:
        return self.target.shell.run(cmd, timeout=timeout, check=check)

    def output(self) -> list[CounterLine]:
        if self.program is None:
            return []
        return parse_counter(self.session.output(self.program))

    def _last_line(self) -> CounterLine | None:
        lines = self.output()
        return lines[-1] if lines else None

    def _wait_progress(self, beyond: int, timeout: float) -> CounterLine:
        def advanced() -> CounterLine | None:
            line = self._last_line()
            return line if line is not None and line.n > beyond else None

        return wait_for(advanced, timeout, f"wpp-counter to print beyond n={beyond}")

    def _firmware_us(self, event: str) -> int | None:
        """``time_us`` of the latest firmware `event` in this boot's cbmem log."""
        try:
            events = self.target.cbmem.events(event, last_boot=True)
        except HilError:
            return None
        values = [e.get("time_us") for e in events if isinstance(e.get("time_us"), int)]
        return values[-1] if values else None

    # -- the cycle -------------------------------------------------------------------

    def start(self) -> CounterLine:
        """Set the tracking mode and start the counter tracked; returns its first line."""
        self.session.require()
        self._sh(f"mkdir -p {self.data_dir} && rm -f {self.data_dir}/wpp-counter.*")
        self._sh(f"echo {self.mode} > {MODE_PARAM}")
        args = (f"--buffer-mib {self.buffer_mib} --period-ms {self.period_ms} "
                f"--state-file {self.data_dir}/wpp-counter.state "
                f"--log-file {self.data_dir}/wpp-counter.log")
        self.program = self.session.start(f"{COUNTER_BIN} {args}", name="counter")
        self.on_step(f"started tracked (pid {self.program.pid}): {COUNTER_BIN} {args}")
        return self._wait_progress(0, self.start_timeout_s())

    def start_timeout_s(self) -> float:
        """How long the counter may take to print its first line: it fills its buffer
        first, and with eager tracking each page is an SMI. On a 2-vCPU twin each SMI
        waits for the rendezvous of a vCPU the host may not be running: on this 2-core
        host, busy with a second twin, 8 MiB (2,048 SMIs) took longer than 30 s."""
        return START_S + START_S_PER_MIB * self.buffer_mib

    def cycle(self, index: int = 1) -> CycleReport:
        report = CycleReport(index, self.mode)
        try:
            self._cycle(report)
        except HilError as exc:
            report.error = str(exc)
        return report

    def _timed(self, report: CycleReport, name: str, fn: Callable[[], Any],
               firmware_event: str | None = None) -> Any:
        t0 = time.monotonic()
        result = fn()
        phase = Phase(name, time.monotonic() - t0)
        if firmware_event:
            phase.firmware_us = self._firmware_us(firmware_event)
        report.phases.append(phase)
        return result

    def _cycle(self, report: CycleReport) -> None:
        first = self._last_line() or self._wait_progress(0, self.start_timeout_s())
        iterations = max(1, int(self.run_s * 1000 / self.period_ms))
        line = self._timed(report, "run", lambda: self._wait_progress(
            first.n + iterations - 1, self.run_s + 30))
        self.on_step(f"counting: {line.raw}")
        self._timed(report, "persist", lambda: self.session.trigger(), firmware_event="persist")
        before = self._last_line()
        if before is None:
            raise HilError("the counter printed nothing before the power-loss procedure")
        report.before = before
        self.on_step(f"power-loss procedure done; last line before the cut: {before.raw}")
        self._timed(report, "power cut", lambda: self.target.power_cut(self.hold_s))
        self.on_step("mains cut and restored: RAM is gone, the persistent device kept")
        if self.after_cut is not None:
            self.after_cut()
        timings = self._timed(report, "boot", lambda: self.target.boot())
        self.on_step(f"booted again (SSH after {getattr(timings, 'ssh_s', 0) or 0:.1f} s); "
                     "recreating")
        said = self._timed(report, "recreate", lambda: self.session.recreate(COUNTER_BIN),
                           firmware_event="restore")
        self.on_step(said)
        pids = recreated_pids(said)
        if pids is not None and self.program is not None:
            self.program.pid = pids[1]
        self._timed(report, "continue", lambda: self._wait_progress(before.n, 30))
        # the first line after the cut, not the newest: n+1 is what must hold
        after = next(x for x in self.output() if x.n > before.n)
        report.after = after
        report.checks = continuation_checks(before, after, pid=self.program.pid)
        self.on_step(f"continued: {after.raw}")
