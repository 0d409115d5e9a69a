"""`WppSession` command composition against a recording shell (no target needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hil.core.errors import HilError
from hil.core.inventory import load
from hil.core.target import Target
from hil.drivers.runner import CommandResult
from hil.wpp.session import WppSession


@dataclass
class FakeShell:
    """Answers like the guest's shell; records every command."""

    has_trigger: bool = True
    recreate_refuses: bool = False
    commands: list[str] = field(default_factory=list)

    def run(self, command: str, timeout: float = 60, check: bool = True) -> CommandResult:
        self.commands.append(command)
        if command.startswith("test -e"):
            return CommandResult(command, 0 if self.has_trigger else 1, "", "")
        if "echo $!" in command or command.startswith("wpp-start -d"):
            return CommandResult(command, 0, "4242\n", "")
        if command.startswith("cat /sys/kernel/wpp/tracked_pid"):
            return CommandResult(command, 0, "4242\n", "")
        if command.startswith("wpp-recreate"):
            if self.recreate_refuses:
                return CommandResult(command, 1, "",
                                     "wpp-recreate: error: snapshot incomplete (no marker)\n")
            return CommandResult(command, 0, "noise\nwpp-recreate: recreated pid 4242\n", "")
        return CommandResult(command, 0, "", "")


def make(has_trigger: bool = True, refuses: bool = False) -> tuple[WppSession, FakeShell]:
    shell = FakeShell(has_trigger, refuses)
    target = Target(load().board("emulated"), shell=shell)
    return WppSession(target), shell


def test_start_runs_the_program_tracked_and_triggers_power_loss() -> None:
    session, shell = make()
    prog = session.start("wpp-counter --period-ms 100", name="counter")
    assert prog.pid == 4242 and prog.out_path == "/tmp/wpp-counter.out" and prog.tracked
    assert shell.commands[0] == (
        "wpp-start -d sh -c 'exec wpp-counter --period-ms 100 > /tmp/wpp-counter.out 2>&1 "
        "< /dev/null' < /dev/null")
    assert session.tracked_pid() == 4242
    session.trigger()
    assert shell.commands[-1] == "echo 10 > /dev/wpp-trigger"


def test_untracked_programs_bypass_wpp_start() -> None:
    session, shell = make()
    prog = session.start("sleep 100", track=False)
    assert not prog.tracked and "wpp-start" not in shell.commands[0]


def test_recreate_returns_the_report_line() -> None:
    session, shell = make()
    assert session.recreate("/usr/bin/wpp-counter") == "wpp-recreate: recreated pid 4242"
    assert shell.commands[0] == "wpp-recreate /usr/bin/wpp-counter"


def test_recreate_refusal_raises_with_its_reason() -> None:
    session, _ = make(refuses=True)
    with pytest.raises(HilError, match="snapshot incomplete"):
        session.recreate("/usr/bin/wpp-counter")


def test_outputs_go_to_out_dir() -> None:
    shell = FakeShell()
    session = WppSession(Target(load().board("emulated"), shell=shell), out_dir="/data/")
    assert session.start("wpp-counter", name="c").out_path == "/data/wpp-c.out"


def test_missing_kernel_support_is_a_clear_error() -> None:
    session, _ = make(has_trigger=False)
    with pytest.raises(HilError, match="no WPP support"):
        session.require()
