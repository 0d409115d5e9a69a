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
from typing import TYPE_CHECKING, Any

from hil.core.errors import HilError, TimeoutExpired
from hil.core.inventory import Board
from hil.core.known_good import KnownGood
from hil.core.runs import artifact_dir
from hil.core.timeout import Deadline
from hil.emulated.state import StateDir

if TYPE_CHECKING:  # the parts' types; the factory (hil.core.parts) builds them lazily
    from hil.drivers.console import Console
    from hil.drivers.flash import Flashrom
    from hil.drivers.pikvm import PiKvmClient
    from hil.drivers.power import PowerControl
    from hil.drivers.shell import Shell

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

    Parts are created lazily by `hil.core.parts` (the inventory factories) so a test that
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
    def pikvm(self) -> PiKvmClient:
        """`hil.drivers.pikvm.PiKvmClient` of the board's PiKVM (the twin's daemon on loopback)."""
        return self._part("pikvm")

    @property
    def power(self) -> PowerControl:
        """`hil.drivers.power.PowerControl`: ATX buttons plus the mains cut."""
        return self._part("power")

    @property
    def console(self) -> Console:
        """`hil.drivers.console` serial console (reconnects across power cycles)."""
        return self._part("console")

    @property
    def shell(self) -> Shell:
        """`hil.drivers.shell.Shell` to the board's OS (reconnects after reboots)."""
        return self._part("shell")

    @property
    def flash(self) -> Flashrom:
        """`hil.drivers.flash` flashrom wrapper for the board's chip (dummy chip on the twin)."""
        return self._part("flash")

    @property
    def cbmem(self) -> Any:
        """Reads and parses the firmware console through SSH (`hil.drivers.cbmem`)."""
        return self._part("cbmem")

    @property
    def is_emulated(self) -> bool:
        return self.board.emulated is not None

    @property
    def twin(self) -> StateDir:
        """The twin's files (chip, persistent device, serial and debugcon logs): the one
        handle for what only an emulated board has; a real board raises."""
        if self.board.emulated is None:
            raise HilError(f"{self.board.name} is a real board: it has no twin files",
                           "this step needs the emulated board (--target emulated)")
        return StateDir(self.board.emulated.state_dir)

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

    def force_off(self) -> None:
        """Long press: off now, no OS shutdown."""
        self.power.force_off()

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
        # known good once the board boots it (hil.lab.recovery promotes it)
        self._known_good().record_flashed(Path(image))
        return result

    def _known_good(self) -> KnownGood:
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
            for label, src in (("serial", self.twin.serial_log),
                               ("debugcon", self.twin.debugcon_log)):
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
    """`cbmem -c` over the target's SSH, parsed (`hil.drivers.cbmem.CbmemLog`)."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def read(self, last_boot: bool = False) -> Any:
        from hil.drivers.cbmem import read_cbmem

        return read_cbmem(self._target.shell, last_boot=last_boot)

    def events(self, name: str | None = None, last_boot: bool = True) -> list[Any]:
        log_ = self.read()
        events = log_.last_boot_events() if last_boot else log_.events
        return [e for e in events if name is None or e.name == name]


def _make_part(name: str, target: Target) -> Any:
    """Build one part from the inventory values with the `hil.core.parts` factories."""
    from hil.core import parts

    if name == "cbmem":
        return _CbmemReader(target)
    if name == "power":  # share the target's PiKVM client
        return parts.make_power(target.board, target.pikvm)
    factory = getattr(parts, f"make_{name}", None)
    if factory is None:
        raise HilError(f"no factory for the '{name}' part",
                       f"hil.core.parts must provide make_{name}")
    return factory(target.board)


def from_inventory(board_name: str | None = None, inventory: Path | str | None = None) -> Target:
    """The `Target` of an inventory board (for the twin: its fixed `hil emulate up` endpoints)."""
    from hil.core.inventory import load
    from hil.core.parts import resolve

    return Target(resolve(load(inventory).board(board_name)))


__all__ = ["BANNER", "BoardBrokenError", "BootTimings", "Target", "TimeoutExpired",
           "from_inventory"]


# -- WPP persistence sessions ---------------------------------------------------------------
