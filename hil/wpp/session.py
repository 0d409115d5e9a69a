"""`WppSession`: the WPP kernel's user interface on a booted `Target`.

Start a program tracked for persistence, trigger the power-loss procedure, recreate the
process after boot, read the firmware's ``wpp:`` events. The experiment
(`hil.wpp.experiment`) and the system tests build on it; it knows nothing of timing or
of what a correct continuation is.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from hil.core.errors import HilError
from hil.core.target import BootTimings, Target


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
    debugcon), parsed by `hil.drivers.cbmem`.
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

    def boot(self, timeout: float = 240.0) -> BootTimings:
        return self.target.boot(timeout)

    def events(self, name: str | None = None, *, last_boot: bool = True) -> list[Any]:
        """``wpp:`` events of the firmware console (`hil.drivers.cbmem.WppEvent`), via
        ``cbmem -c``."""
        return list(self.target.cbmem.events(name, last_boot=last_boot))

    def debugcon_events(self, name: str | None = None) -> list[Any]:
        """``wpp:`` events the twin's SMM handler wrote to debugcon (all boots)."""
        from hil.drivers.cbmem import parse_log

        text = self.target.twin.debugcon_log.read_text(errors="replace")
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
