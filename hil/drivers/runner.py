"""Run a tool's command line here or on another host, with the same argv either way.

Flashing happens either on this machine (``-p internal``, a USB programmer) or on the
PiKVM/RTE that holds the SPI clip. `Flashrom` is written once against the small `Runner`
interface below; `LocalRunner` (python ``sh``) and `SshRunner` (a `hil.drivers.shell.Shell`) only
differ in where the process runs and how files get there and back.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import sh

from hil.core.errors import HilError, TimeoutExpired

LineSink = Callable[[str], None]

# Tools such as flashrom live in sbin, which a non-login PATH may lack.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class CommandResult:
    """What a finished command produced; `command` is the exact line that ran."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout then stderr: flashrom splits its messages between both."""
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr


class Runner(Protocol):
    """Where a command runs. `run` never raises for a non-zero exit; it returns it."""

    label: str

    def run(
        self, argv: Sequence[str], timeout: float, on_line: LineSink | None = None
    ) -> CommandResult: ...

    def which(self, tool: str) -> str | None: ...

    def make_temp_dir(self) -> str: ...

    def remove_tree(self, path: str) -> None: ...

    def put(self, local: Path, remote: str) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def display(self, argv: Sequence[str]) -> str:
        """The command as a user would type it on this machine to run `argv` there."""
        ...


class LocalRunner:
    """Runs commands on this machine through the ``sh`` package (no shell, no tty)."""

    label = "localhost"

    def run(
        self, argv: Sequence[str], timeout: float, on_line: LineSink | None = None
    ) -> CommandResult:
        out: list[str] = []
        err: list[str] = []

        def sink(buf: list[str]) -> Callable[[str], None]:
            def feed(line: str) -> None:
                buf.append(line)
                if on_line is not None:
                    on_line(line.rstrip("\n"))

            return feed

        start = time.monotonic()
        command = shlex.join(argv)
        try:
            proc = sh.Command(argv[0])(
                *argv[1:],
                _out=sink(out),
                _err=sink(err),
                _ok_code=list(range(256)),
                _timeout=timeout,
                _tty_out=False,
                _in=None,
                _return_cmd=True,
            )
            code = proc.exit_code
        except sh.TimeoutException as exc:
            raise TimeoutExpired(
                f"'{command}' did not finish within {timeout:.0f} s",
                "the process was killed; check why it hangs (e.g. the programmer connection)",
            ) from exc
        except sh.CommandNotFound as exc:
            raise HilError(f"cannot run '{argv[0]}': not found") from exc
        except sh.ErrorReturnCode as exc:  # killed by a signal (negative exit code)
            code = exc.exit_code
        return CommandResult(command, code, "".join(out), "".join(err), time.monotonic() - start)

    def which(self, tool: str) -> str | None:
        if "/" in tool:
            p = Path(tool)
            return str(p) if p.is_file() and p.stat().st_mode & 0o111 else None
        found = shutil.which(tool)
        if found:
            return found
        for d in _SBIN:
            candidate = Path(d) / tool
            if candidate.is_file():
                return str(candidate)
        return None

    def make_temp_dir(self) -> str:
        return tempfile.mkdtemp(prefix="hil-")

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def put(self, local: Path, remote: str) -> None:
        if Path(local).resolve() != Path(remote).resolve():
            shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        if Path(remote).resolve() != Path(local).resolve():
            shutil.copyfile(remote, local)

    def display(self, argv: Sequence[str]) -> str:
        return shlex.join(argv)


class RemoteShell(Protocol):
    """What `SshRunner` needs of an SSH connection (`hil.drivers.shell.Shell` is one).

    Declared here so that the runner does not import the shell, which imports
    `CommandResult` from here: the two modules would otherwise depend on each other.
    """

    @property
    def destination(self) -> str: ...

    def run(self, command: str, timeout: float = 60.0, check: bool = True,
            on_line: LineSink | None = None, stdin: str | None = None) -> CommandResult: ...

    def put(self, local: str | Path, remote: str) -> None: ...

    def get(self, remote: str, local: str | Path) -> None: ...

    def ssh_command(self) -> str: ...


class SshRunner:
    """Runs commands on another host through an open `hil.drivers.shell.Shell`."""

    def __init__(self, shell: RemoteShell) -> None:
        self.shell = shell
        self.label = shell.destination
        self.temp_dirs_made: list[str] = []  # for cleanup checks and post-mortems

    def run(
        self, argv: Sequence[str], timeout: float, on_line: LineSink | None = None
    ) -> CommandResult:
        return self.shell.run(shlex.join(argv), timeout=timeout, check=False, on_line=on_line)

    def which(self, tool: str) -> str | None:
        dirs = " ".join(shlex.quote(f"{d}/{tool}") for d in _SBIN)
        probe = (
            f"command -v {shlex.quote(tool)} || "
            f"for f in {dirs}; do [ -x \"$f\" ] && echo \"$f\" && break; done"
        )
        res = self.shell.run(probe, timeout=30, check=False)
        lines = [x.strip() for x in res.stdout.splitlines() if x.strip()]
        return lines[0] if lines else None

    def make_temp_dir(self) -> str:
        path = self.shell.run("mktemp -d /tmp/hil-XXXXXXXX", timeout=30).stdout.strip()
        self.temp_dirs_made.append(path)
        return path

    def remove_tree(self, path: str) -> None:
        if not path.startswith("/tmp/hil-"):  # never rm -rf anything we did not create
            raise HilError(f"refusing to remove '{path}' on {self.label}")
        self.shell.run(f"rm -rf {shlex.quote(path)}", timeout=60, check=False)

    def put(self, local: Path, remote: str) -> None:
        self.shell.put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        self.shell.get(remote, local)

    def display(self, argv: Sequence[str]) -> str:
        return f"{self.shell.ssh_command()} {shlex.quote(shlex.join(argv))}"
