"""`WppSession` command composition against a recording shell (no target needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hil.errors import HilError
from hil.inventory import load
from hil.runner import CommandResult
from hil.target import Target, WppSession


@dataclass
class FakeShell:
    """Answers like the guest's shell; records every command."""

    has_trigger: bool = True
    commands: list[str] = field(default_factory=list)

    def run(self, command: str, timeout: float = 60, check: bool = True) -> CommandResult:
        self.commands.append(command)
        if command.startswith("test -e"):
            return CommandResult(command, 0 if self.has_trigger else 1, "", "")
        if "echo $!" in command:
            return CommandResult(command, 0, "4242\n", "")
        return CommandResult(command, 0, "", "")


def make(has_trigger: bool = True) -> tuple[WppSession, FakeShell]:
    shell = FakeShell(has_trigger)
    target = Target(load().board("emulated"), shell=shell)
    return WppSession(target), shell


def test_start_tracks_the_background_pid() -> None:
    session, shell = make()
    prog = session.start("wpp-counter --period-ms 100", name="counter")
    assert prog.pid == 4242 and prog.out_path == "/tmp/wpp-counter.out"
    assert "nohup sh -c 'wpp-counter --period-ms 100' > /tmp/wpp-counter.out" in shell.commands[0]
    assert shell.commands[1] == "echo 4242 > /sys/kernel/wpp/track"
    session.trigger()
    assert shell.commands[-1] == "echo 1 > /dev/wpp-trigger"


def test_untracked_programs_are_not_registered() -> None:
    session, shell = make()
    session.start("sleep 100", track=False)
    assert len(shell.commands) == 1


def test_missing_kernel_support_is_a_clear_error() -> None:
    session, _ = make(has_trigger=False)
    with pytest.raises(HilError, match="no WPP support"):
        session.require()
