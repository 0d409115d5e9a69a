"""A real OpenSSH server on a loopback port, for tests of SSH-facing parts.

Import the `sshd` fixture (``from tests.parts.sshd_fixture import sshd  # noqa: F401``)
or use `SshServer` directly. The server runs ``/usr/sbin/sshd -D -e -f <config>`` with a
temporary ed25519 host key and an AuthorizedKeysFile holding a temporary client key, so
it touches nothing outside its temp dir. `restart(new_host_key=True)` simulates a board
that was power-cycled and reflashed (connection dropped, host key changed).

It logs in as the user running the tests (root in the lab containers). Needs the
``openssh-server`` and ``openssh-client`` (ssh-keygen) packages.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hil-test", "-f", str(path)],
        check=True,
    )


def _fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True,
                         text=True).stdout
    return out.split()[1]


class SshServer:
    """sshd on 127.0.0.1:<port> accepting `key_file` for `user`."""

    def __init__(self, root: Path) -> None:
        if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
            pytest.fail("sshd/ssh-keygen missing: apt-get install openssh-server openssh-client")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = getpass.getuser()
        self.key_file = root / "client_key"
        _keygen(self.key_file)
        self.authorized_keys = root / "authorized_keys"
        shutil.copyfile(root / "client_key.pub", self.authorized_keys)
        os.chmod(self.authorized_keys, 0o600)
        self.host_key = root / "host_key"
        self.log_file = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._new_host_key()
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory

    def _new_host_key(self) -> None:
        for p in (self.host_key, self.host_key.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        _keygen(self.host_key)
        self.host_key_fingerprint = _fingerprint(self.host_key.with_suffix(".pub"))

    def _config(self) -> Path:
        cfg = self.root / "sshd_config"
        cfg.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {self.host}\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "PidFile none\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PermitRootLogin yes\n"
            "PasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
        )
        return cfg

    def start(self) -> None:
        cfg = self._config()
        log = open(self.log_file, "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log_file.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def stop(self) -> None:
        """Kill sshd and every session it forked (a power cut, as far as clients see it)."""
        if self.proc is None:
            return
        pid = self.proc.pid
        # sessions are children of the listener; kill them first, then the listener
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), 9)
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, new_host_key: bool = False, down_for: float = 0.0,
                stopped: threading.Event | None = None) -> None:
        """Stop, optionally change the host key, stay down `down_for` s, start again.

        `stopped` is set once the server is down, so a test running this in a thread
        can check the down state without guessing how long stopping takes.
        """
        self.stop()
        if new_host_key:
            self._new_host_key()
        if stopped is not None:
            stopped.set()
        time.sleep(down_for)
        self.start()

    def shell_kwargs(self) -> dict[str, object]:
        """Arguments for `hil.drivers.shell.Shell(**kwargs)`."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "key_file": self.key_file}


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    server = SshServer(tmp_path / "sshd")
    server.start()
    try:
        yield server
    finally:
        server.stop()
