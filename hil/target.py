"""One `Target` for the lab board and its emulated twin.

Tests and CLI verbs talk to "the board" only through this object: power (ATX + mains
cut), the serial console, SSH, the flash chip, the PiKVM and the firmware log. It is built
from an inventory `Board`; the twin differs only in the values (loopback endpoints, a
dummy flashrom programmer), so a test that passes on the twin exercises the same code
paths as on the board.

Boot-state helpers share one deadline (off -> firmware banner on serial -> OS ready
over SSH) and return timings; `capture` collects the evidence of a run (serial log,
debugcon log on the twin, ``cbmem -c``, dmesg, screenshot) into the run directory.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.errors import HilError, TimeoutExpired
from hil.inventory import Board
from hil.runs import artifact_dir
from hil.timeout import Deadline

log = logging.getLogger(__name__)

# coreboot 4.x prints "coreboot-4.15... bootblock starting" (Dasharo: "coreboot-v1.1.3 ...")
BANNER = re.compile(r"coreboot-\S+.*starting")


class BoardBrokenError(HilError):
    """An earlier step (typically a boot) failed; later steps fail fast with its cause."""


@dataclass
class BootTimings:
    """Seconds from the power-on press to each milestone (None: not reached/not waited)."""

    banner_s: float | None = None
    ssh_s: float | None = None
    total_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class Target:
    """A board under test (real or twin), built from an inventory `Board`.

    Parts are created lazily by `hil.parts` (the inventory factories) so a test that
    only needs SSH never opens the serial port; each can also be injected (unit tests).
    """

    def __init__(self, board: Board, **parts: Any) -> None:
        self.board = board
        self._parts: dict[str, Any] = dict(parts)
        self.broken: str | None = None
        self.last_boot: BootTimings | None = None
        self._power_on_mark: int | None = None

    def __repr__(self) -> str:
        return f"Target({self.board.name!r}{', twin' if self.is_emulated else ''})"

    # -- parts ---------------------------------------------------------------------------

    def _part(self, name: str) -> Any:
        if name not in self._parts:
            self._parts[name] = _make_part(name, self)
        return self._parts[name]

    @property
    def pikvm(self) -> Any:
        """`hil.pikvm.PiKvmClient` of the board's PiKVM (the twin's daemon on loopback)."""
        return self._part("pikvm")

    @property
    def power(self) -> Any:
        """`hil.power.PowerControl`: ATX buttons plus the mains cut."""
        return self._part("power")

    @property
    def console(self) -> Any:
        """`hil.console` serial console (reconnects across power cycles)."""
        return self._part("console")

    @property
    def shell(self) -> Any:
        """`hil.shell.Shell` to the board's OS (reconnects after reboots)."""
        return self._part("shell")

    @property
    def flash(self) -> Any:
        """`hil.flash` flashrom wrapper for the board's chip (dummy chip file on the twin)."""
        return self._part("flash")

    @property
    def cbmem(self) -> Any:
        """Reads and parses the firmware console through SSH (`hil.cbmem`)."""
        return self._part("cbmem")

    @property
    def is_emulated(self) -> bool:
        return self.board.emulated is not None

    def _state_file(self, name: str) -> Path:
        if self.board.emulated is None:
            raise HilError(f"{self.board.name} is a real board: it has no {name}")
        return Path(self.board.emulated.state_dir) / name

    @property
    def pdev_path(self) -> Path:
        """The twin's persistent-device backing file (ivshmem BAR2 contents)."""
        return self._state_file("pdev.img")

    @property
    def chip_path(self) -> Path:
        """The twin's flash chip file (what flashrom's dummy programmer writes)."""
        return self._state_file("chip.bin")

    @property
    def debugcon_path(self) -> Path:
        """The twin's debugcon log (port 0xe9: SMM debug output)."""
        return self._state_file("debugcon.log")

    @property
    def serial_log_path(self) -> Path:
        """The twin's complete serial log (all boots)."""
        return self._state_file("serial.log")

    def close(self) -> None:
        for name in ("console", "shell", "pikvm"):
            part = self._parts.pop(name, None)
            if part is not None and hasattr(part, "close"):
                with contextlib.suppress(Exception):
                    part.close()

    # -- state ---------------------------------------------------------------------------

    def check_usable(self) -> None:
        """Raise `BoardBrokenError` if an earlier boot failed (fail fast, with the cause)."""
        if self.broken:
            raise BoardBrokenError(
                f"{self.board.name} is unusable: {self.broken}",
                "see the artifacts of the first failure; fix it and rerun",
            )

    def mark_broken(self, reason: str) -> None:
        self.broken = reason

    def is_on(self) -> bool:
        return bool(self.pikvm.atx_state().power_led)

    # -- power ---------------------------------------------------------------------------

    def power_on(self) -> None:
        """Press power (no-op when on); raises if mains are cut or the LED stays off.

        The serial console is opened first, so the firmware's first lines are seen, and
        its position is remembered for `wait_banner`.
        """
        self._power_on_mark = self.console.mark()
        self.power.on()

    def power_off(self) -> None:
        """OS shutdown via a short press, forced with a long press after a timeout."""
        self.power.off()

    def force_off(self) -> None:
        """Long press: off now, no OS shutdown."""
        atx = getattr(self.power, "atx", None)
        if atx is not None and hasattr(atx, "force_off"):
            atx.force_off()
        else:
            self.pikvm.atx_power("off_hard", wait=True)

    def reset(self) -> None:
        self.power.reset()

    def power_cut(self, hold_s: float | None = None) -> None:
        """Cut mains (RAM lost, like a power failure), hold, restore; the board stays off."""
        hold = self.board.power_cut.hold_s if hold_s is None else hold_s
        self.power.cut(hold)

    # -- boot ------------------------------------------------------------------------------

    def wait_banner(self, timeout: float = 30.0, since: int | None = None) -> float:
        """Wait for the firmware banner on serial printed after console position `since`
        (default: since the last `power_on`); returns the seconds waited."""
        start = time.monotonic()
        if since is None:
            since = self._power_on_mark
        self.console.expect(BANNER, timeout=timeout, since=since)
        return time.monotonic() - start

    def wait_ssh(self, timeout: float = 120.0) -> float:
        """Wait until the OS answers over SSH; returns the seconds waited."""
        return float(self.shell.wait_reachable(timeout, what=f"{self.board.name} OS over ssh"))

    def boot(self, timeout: float = 180.0, *, banner: bool = True) -> BootTimings:
        """Power on (if off) and wait for the OS; a failure marks the target broken.

        Timings are measured from the power press; `banner=False` skips the serial wait
        (e.g. a firmware without serial console).
        """
        self.check_usable()
        deadline = Deadline(timeout)
        timings = BootTimings()
        try:
            if self.is_on():
                banner = False  # already running: nothing new will be printed
            since = self.console.mark() if banner else 0
            start = time.monotonic()
            self.power_on()
            if banner:
                self.console.expect(BANNER, timeout=max(1.0, deadline.remaining), since=since)
                timings.banner_s = time.monotonic() - start
            self.shell.wait_reachable(max(1.0, deadline.remaining),
                                      what=f"{self.board.name} OS over ssh")
            timings.ssh_s = time.monotonic() - start
            timings.total_s = deadline.elapsed
        except (HilError, OSError) as e:
            self.mark_broken(f"boot failed: {e}")
            raise
        self.last_boot = timings
        if banner:  # our firmware started and the OS answers: the ROM is known good
            with contextlib.suppress(OSError):
                self._known_good().promote()
        return timings

    def ensure_booted(self, timeout: float = 180.0, settle: float = 30.0) -> BootTimings | None:
        """Boot unless the OS already answers over SSH.

        A board that is on but silent gets `settle` seconds (it may be rebooting), then is
        forced off and booted afresh, so one test leaving it hung does not fail the next.
        """
        self.check_usable()
        if self.is_on():
            if self.shell.is_reachable():
                return None
            try:
                self.shell.wait_reachable(settle, what=f"{self.board.name} OS over ssh")
                return None
            except HilError:
                log.warning("%s is on but not answering: forcing it off", self.board.name)
                self.force_off()
        return self.boot(timeout)

    # -- flash -----------------------------------------------------------------------------

    def flash_write(self, image: Path | str, **kwargs: Any) -> Any:
        """Write `image` to the board's flash with flashrom.

        When the inventory says `flash.power_off_for_write` (external SPI flashing in G3),
        the write is refused while the power LED is on: writing a chip under a running
        board corrupts what the firmware reads.
        """
        if self.board.flash.power_off_for_write and self.is_on():
            raise HilError(
                f"refusing to flash {self.board.name} while it is powered on",
                "power it off first (hil power off): the flash is written externally in G3",
            )
        result = self.flash.write(Path(image), **kwargs)
        # known good once the board boots it (hil.recovery: the way back)
        self._known_good().record_flashed(Path(image))
        return result

    def _known_good(self) -> Any:
        from hil.recovery import KnownGood

        return KnownGood(self.board)

    # -- artifacts -------------------------------------------------------------------------

    def capture(self, name: str, dest: Path | None = None) -> dict[str, Path]:
        """Collect serial log, debugcon (twin), ``cbmem -c``, dmesg and a screenshot.

        Best effort: each artifact that cannot be taken (board off, no SSH) is noted in
        ``errors.txt`` instead of failing, since this runs when something already failed.
        """
        out = dest or artifact_dir(name)
        out.mkdir(parents=True, exist_ok=True)
        got: dict[str, Path] = {}
        errors: list[str] = []

        def attempt(label: str, fn: Any) -> None:
            try:
                path = fn()
                if path is not None:
                    got[label] = path
            except Exception as e:  # evidence gathering must not raise
                errors.append(f"{label}: {type(e).__name__}: {e}")

        if self.is_emulated:
            for label, src in (("serial", self.serial_log_path),
                               ("debugcon", self.debugcon_path)):
                attempt(label, lambda s=src, lbl=label: _copy(s, out / f"{lbl}.log"))
        elif "console" in self._parts:
            attempt("serial", lambda: _copy(self.console.line_log_path, out / "serial.log"))
        powered = False
        try:
            powered = self.is_on()
        except Exception as e:
            errors.append(f"power state: {type(e).__name__}: {e}")
        if powered:
            attempt("screenshot", lambda: self.pikvm.snapshot(out / "screen.jpg"))
            if self.broken:
                errors.append("ssh: not tried (the target failed to boot)")
            elif self.shell.is_reachable():
                attempt("cbmem", lambda: _write(
                    out / "cbmem.txt", self.shell.run("cbmem -c", timeout=60, check=False).stdout))
                attempt("dmesg", lambda: _write(
                    out / "dmesg.txt", self.shell.run("dmesg", timeout=30, check=False).stdout))
            else:
                errors.append("ssh: not reachable (no cbmem/dmesg)")
        else:
            errors.append("board is off: no screenshot, cbmem or dmesg")
        if self.broken:
            errors.append(f"target marked broken: {self.broken}")
        if errors:
            got["errors"] = _write(out / "errors.txt", "\n".join(errors) + "\n")
        return got


def _copy(src: Path, dst: Path) -> Path | None:
    if not src.exists():
        return None
    shutil.copyfile(src, dst)
    return dst


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class _CbmemReader:
    """`cbmem -c` over the target's SSH, parsed (`hil.cbmem.CbmemLog`)."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def read(self, last_boot: bool = False) -> Any:
        from hil.cbmem import read_cbmem

        return read_cbmem(self._target.shell, last_boot=last_boot)

    def events(self, name: str | None = None, last_boot: bool = True) -> list[Any]:
        log_ = self.read()
        events = log_.last_boot_events() if last_boot else log_.events
        return [e for e in events if name is None or e.name == name]


def _make_part(name: str, target: Target) -> Any:
    """Build one part from the inventory values with the `hil.parts` factories."""
    from hil import parts

    if name == "cbmem":
        return _CbmemReader(target)
    if name == "power":  # share the target's PiKVM client
        return parts.make_power(target.board, target.pikvm)
    factory = getattr(parts, f"make_{name}", None)
    if factory is None:
        raise HilError(f"no factory for the '{name}' part", f"hil.parts must provide make_{name}")
    return factory(target.board)


def from_inventory(board_name: str | None = None, inventory: Path | str | None = None) -> Target:
    """The `Target` of an inventory board (for the twin: its fixed `hil emulate up` endpoints)."""
    from hil.inventory import load
    from hil.parts import resolve

    return Target(resolve(load(inventory).board(board_name)))


__all__ = ["BANNER", "BoardBrokenError", "BootTimings", "Target", "TimeoutExpired",
           "TrackedProgram", "WppSession",
           "from_inventory"]


# -- WPP persistence sessions ---------------------------------------------------------------


@dataclass
class TrackedProgram:
    """A program started on the target by a `WppSession` (its output goes to `out_path`)."""

    name: str
    pid: int
    command: str
    out_path: str
    tracked: bool


class WppSession:
    """Drive one power-loss experiment: start a tracked program, trigger, cut, boot, inspect.

    Uses the WPP kernel's user interface (kernel/wpp, kernel/tools): ``wpp-start -d``
    starts a program tracked for persistence and prints its pid; writing a magic number
    to ``/dev/wpp-trigger`` acts (10: power loss: halt the tracked process and persist it;
    70: sync the firmware now); ``/sys/kernel/wpp/tracked_pid`` names the tracked process;
    ``wpp-recreate BINARY`` brings the persisted process back after boot. The firmware
    reports what it did as ``wpp:`` lines in the CBMEM console (and on the twin's
    debugcon), parsed by `hil.cbmem`.
    """

    POWER_LOSS = 10
    SYNC = 70

    def __init__(
        self,
        target: Target,
        *,
        trigger_path: str = "/dev/wpp-trigger",
        sysfs: str = "/sys/kernel/wpp",
        start_cmd: str = "wpp-start -d",
        recreate_cmd: str = "wpp-recreate",
        out_dir: str = "/tmp",
    ) -> None:
        self.target = target
        # where started programs' output goes: on storage that survives a power cut
        # (the twin's /data disk) when the program is to be recreated, since the
        # recreated process reopens its files
        self.out_dir = out_dir.rstrip("/")
        self.trigger_path = trigger_path
        self.sysfs = sysfs
        self.start_cmd = start_cmd
        self.recreate_cmd = recreate_cmd
        self.programs: list[TrackedProgram] = []

    def _run(self, command: str, timeout: float = 30, check: bool = True) -> Any:
        return self.target.shell.run(command, timeout=timeout, check=check)

    def supported(self) -> bool:
        """True if the running kernel exposes the WPP trigger."""
        return bool(self._run(f"test -e {self.trigger_path}", check=False).ok)

    def require(self) -> None:
        if not self.supported():
            raise HilError(
                f"the target's kernel has no WPP support ({self.trigger_path} is missing)",
                "boot the WPP kernel (kernel/build.sh) on the target",
            )

    def start(self, command: str, name: str | None = None, *, track: bool = True) -> TrackedProgram:
        """Start `command` in the background on the target, tracked unless `track=False`.

        The program's output goes to ``<out_dir>/wpp-<name>.out`` on the target (`output`).
        """
        import shlex

        name = name or f"prog{len(self.programs)}"
        out = f"{self.out_dir}/wpp-{name}.out"
        inner = f"exec {command} > {out} 2>&1 < /dev/null"
        if track:
            res = self._run(f"{self.start_cmd} sh -c {shlex.quote(inner)} < /dev/null")
        else:
            res = self._run(f"sh -c {shlex.quote(inner)} > /dev/null 2>&1 & echo $!")
        try:
            pid = int(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise HilError(f"starting '{command}' on the target printed no pid: "
                           f"{res.stdout!r}") from None
        prog = TrackedProgram(name, pid, command, out, track)
        self.programs.append(prog)
        return prog

    def tracked_pid(self) -> int:
        """The kernel's tracked process (0: none)."""
        return int(self._run(f"cat {self.sysfs}/tracked_pid").stdout.strip() or 0)

    def output(self, prog: TrackedProgram) -> str:
        return str(self._run(f"cat {prog.out_path}", check=False).stdout)

    def alive(self, prog: TrackedProgram) -> bool:
        return bool(self._run(f"kill -0 {prog.pid}", check=False).ok)

    def trigger(self, magic: int = POWER_LOSS, timeout: float = 120) -> None:
        """Write `magic` to the trigger (default: power loss, as the PSU's power-fail line
        would signal); raises with the kernel's reason if it refuses."""
        self._run(f"echo {magic} > {self.trigger_path}", timeout=timeout)

    def power_loss(self, hold_s: float | None = None) -> None:
        """Trigger the power-loss procedure, then really cut mains (RAM lost) and restore
        it; the board stays off until `boot`."""
        self.trigger(self.POWER_LOSS)
        self.target.power_cut(hold_s)

    def boot(self, timeout: float = 240.0) -> BootTimings:
        return self.target.boot(timeout)

    def events(self, name: str | None = None, *, last_boot: bool = True) -> list[Any]:
        """``wpp:`` events of the firmware console (`hil.cbmem.WppEvent`), via ``cbmem -c``."""
        return list(self.target.cbmem.events(name, last_boot=last_boot))

    def debugcon_events(self, name: str | None = None) -> list[Any]:
        """``wpp:`` events the twin's SMM handler wrote to debugcon (all boots)."""
        from hil.cbmem import parse_log

        text = self.target.debugcon_path.read_text(errors="replace")
        return [e for e in parse_log(text).events if name is None or e.name == name]

    def recreate(self, binary: str, timeout: float = 300.0, *, args: str = "") -> str:
        """Run ``wpp-recreate [args] BINARY`` on the target and return its report line.

        The recreator returns once the process runs again (its own descriptors are the
        snapshot's, so it holds no SSH channel); a refusal raises with its error line.
        """
        cmd = " ".join(x for x in (self.recreate_cmd, args, binary) if x)
        res = self._run(cmd, timeout=timeout, check=False)
        lines = [ln for ln in (res.stdout + "\n" + res.stderr).splitlines()
                 if ln.startswith("wpp-recreate:")]
        errors = [ln for ln in lines if "error:" in ln]
        if res.exit_code != 0 or errors:
            why = errors[0] if errors else (lines[-1] if lines else res.stderr.strip()[-300:])
            raise HilError(f"recreating {binary} failed: {why}",
                           "see dmesg ('wpp: recreate refused: ...') and wpp-status on the target")
        if not lines:
            raise HilError(f"wpp-recreate exited 0 but printed no report: {res.stdout!r}")
        return lines[-1]

    def cleanup(self) -> None:
        """Stop the programs this session started, if the target is still up."""
        if not self.programs:
            return
        with contextlib.suppress(Exception):
            if self.target.is_on() and self.target.shell.is_reachable():
                pids = " ".join(str(p.pid) for p in self.programs)
                self._run(f"kill {pids} 2>/dev/null", check=False)
        self.programs.clear()
