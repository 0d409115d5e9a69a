"""Thin helpers over ``target.shell.run`` shared by the workload runners.

Benchmarks must not die on the first odd exit code: a tracked variant that cannot run
(kernel without WPP, starter missing) becomes a skipped row with its reason, while the
untracked baseline is still measured.
"""

from __future__ import annotations

from typing import Any

from hil.bench import guest
from hil.core.errors import HilError
from hil.core.timeout import wait_for


def run(target: Any, command: str, timeout: float = 600.0) -> str:
    """Run `command`; its stdout, or HilError naming the command and its output tail."""
    res = target.shell.run(command, timeout=timeout, check=False)
    if not res.ok:
        tail = (str(res.stdout) + str(getattr(res, "stderr", ""))).strip()[-300:]
        raise HilError(f"`{command}` exited {res.exit_code}: {tail}")
    return str(res.stdout)


def wpp_unavailable(target: Any) -> str | None:
    """Why tracked variants cannot run on this target (None: they can)."""
    res = target.shell.run(guest.wpp_support_check(), timeout=30, check=False)
    if res.ok:
        return None
    return "the target's kernel/image has no WPP tracking (" + guest.wpp_support_check() + ")"


def start(target: Any, variant: str, command: str, out: str, *, cpu: int | None = None) -> int:
    """Start `command` in the background (tracked in `variant` mode, bound to `cpu` if
    given: the starter and the program inherit the affinity); returns its pid."""
    if variant != guest.UNTRACKED:
        run(target, guest.set_mode(variant), timeout=30)
    line = guest.pinned(cpu, guest.launch(variant, command))
    text = run(target, guest.background(line, out), timeout=30)
    return int(text.strip().splitlines()[-1])


def stop(target: Any, pids: list[int]) -> None:
    """Stop what `start` started and wait until no process is tracked any more."""
    target.shell.run(guest.stop(pids), timeout=60, check=False)

    def untracked() -> bool:
        res = target.shell.run(guest.tracked_pid(), timeout=30, check=False)
        return res.stdout.strip() in ("", "0")

    wait_for(untracked, 30, "the tracked benchmark process to exit")


def wait_tracked(target: Any, timeout: float = 30.0) -> int:
    """Wait until the kernel reports a tracked process; returns its pid."""

    def pid() -> int | None:
        res = target.shell.run(guest.tracked_pid(), timeout=30, check=False)
        text = str(res.stdout).strip()
        return int(text) if text.isdigit() and int(text) > 0 else None

    return int(wait_for(pid, timeout, "the benchmark load to be tracked"))
