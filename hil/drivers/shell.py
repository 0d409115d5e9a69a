"""SSH into the board (or the PiKVM/RTE) with fabric: run, copy, wait until reachable.

Lab boards are reflashed and power-cycled all the time, which breaks two SSH habits:

* Host keys change on every reinstall, so strict known_hosts checking would fail every
  run. `Shell` accepts any host key but logs its SHA256 fingerprint (and a warning when it
  differs from the one this `Shell` saw before), so a log still shows which key answered.
  Use it only on a lab network you trust.
* A power cycle kills the TCP connection without a FIN. Every call checks the transport
  and opens a fresh connection when the old one is dead; `wait_reachable` polls with a
  shared `Deadline` until the board's sshd answers again.

Secrets (password, key passphrase) are only handed to paramiko: they never appear in
`repr`, log lines or exception text.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from hil.core.errors import HilError, TimeoutExpired
from hil.core.timeout import Deadline
from hil.drivers.runner import CommandResult

log = logging.getLogger(__name__)

# paramiko logs a full traceback at ERROR whenever a host that is still booting accepts
# TCP but sends no SSH banner yet; with no logging configured Python prints it on stderr.
# Waiting for SSH is normal here and failures are reported by this module with a cause.
logging.getLogger("paramiko.transport").addHandler(logging.NullHandler())
logging.getLogger("paramiko.transport").propagate = False

# Errors meaning "the connection (or the host) is gone", as opposed to a command failing.
_CONNECTION_ERRORS = (
    paramiko.SSHException,
    EOFError,
    OSError,
    socket.timeout,
)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _LogHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept any host key (lab boards get new keys on reflash) but log its fingerprint."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        fp = fingerprint(key)
        previous = self.shell.host_key_fingerprint
        if previous is not None and previous != fp:
            log.warning(
                "host key of %s changed: %s -> %s (expected after a reflash)",
                self.shell.destination, previous, fp,
            )
        else:
            log.info("host key of %s: %s %s", self.shell.destination, key.get_name(), fp)
        self.shell.host_key_fingerprint = fp
        self.shell.host_key_type = key.get_name()


class _LineStream(io.TextIOBase):
    """File-like sink that hands complete lines to a callback (progress while running)."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.on_line = on_line
        self.pending = ""

    def write(self, s: str) -> int:
        self.pending += s
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.on_line(line.rstrip("\r"))
        return len(s)

    def flush(self) -> None:
        pass


class Shell:
    """One SSH destination. Thread-unsafe; open connections lazily and reopen when dead."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str = "root",
        *,
        key_file: str | Path | None = None,
        password: str | None = None,
        key_passphrase: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if key_file is None and password is None:
            raise HilError(
                f"no credentials for ssh {user}@{host}:{port}",
                "give a key file or a password (e.g. from the inventory's secret)",
            )
        if key_file is not None and not Path(key_file).is_file():
            raise HilError(f"ssh key file '{key_file}' does not exist",
                           "check the inventory's ssh key path")
        self.host = host
        self.port = int(port)
        self.user = user
        self.key_file = str(key_file) if key_file is not None else None
        self._password = password
        self._passphrase = key_passphrase
        self.connect_timeout = connect_timeout
        self.host_key_fingerprint: str | None = None
        self.host_key_type: str | None = None
        self._conn: Connection | None = None
        self._pkey: paramiko.PKey | None = None
        self.connections_opened = 0

    def __repr__(self) -> str:  # no secrets
        auth = f"key={self.key_file}" if self.key_file else "password=***"
        return f"Shell({self.user}@{self.host}:{self.port}, {auth})"

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def ssh_command(self) -> str:
        """How a user reaches the same host by hand (for restore hints); no secrets."""
        parts = ["ssh", "-p", str(self.port)]
        if self.key_file:
            parts += ["-i", self.key_file]
        return shlex.join([*parts, f"{self.user}@{self.host}"])

    # -- connection management -------------------------------------------------------

    def _new_connection(self) -> Connection:
        connect_kwargs: dict[str, object] = {
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": self.connect_timeout,
            "auth_timeout": self.connect_timeout,
        }
        if self.key_file:
            connect_kwargs["pkey"] = self._load_key()
        if self._password is not None:
            connect_kwargs["password"] = self._password
        conn = Connection(
            self.host,
            user=self.user,
            port=self.port,
            config=Config(lazy=True),
            connect_timeout=self.connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        conn.client.set_missing_host_key_policy(_LogHostKeyPolicy(self))
        return conn

    def _load_key(self) -> paramiko.PKey:
        """Load the private key once, so a key problem is reported as such (not as 'host down')."""
        if self._pkey is None:
            assert self.key_file is not None
            secret = self._passphrase.encode() if self._passphrase else None
            try:
                self._pkey = paramiko.PKey.from_path(self.key_file, password=secret)
            except (paramiko.PasswordRequiredException, TypeError) as exc:
                # cryptography raises TypeError for "encrypted key but no password"
                if isinstance(exc, TypeError) and "password" not in str(exc).lower():
                    raise
                raise HilError(
                    f"ssh key '{self.key_file}' is encrypted and no passphrase was given",
                    "configure the key's passphrase secret, or use an unencrypted lab key",
                ) from exc
            except (paramiko.SSHException, ValueError, OSError) as exc:
                raise HilError(
                    f"cannot load ssh key '{self.key_file}': {type(exc).__name__}"
                    + (" (wrong passphrase?)" if self._passphrase else ""),
                    "check the key file and its passphrase",
                ) from exc
        return self._pkey

    def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.transport is None:
            return False
        return conn.transport.is_active() and conn.transport.is_authenticated()

    def connect(self) -> Connection:
        """An open connection: the current one if alive, else a fresh one."""
        if self._alive():
            assert self._conn is not None
            return self._conn
        self.close()
        conn = self._new_connection()
        try:
            conn.open()
        except paramiko.AuthenticationException as exc:
            conn.close()
            raise HilError(
                f"ssh authentication failed for {self.destination}",
                "check the user and the key/password configured for this host",
            ) from exc
        except (*_CONNECTION_ERRORS, ValueError) as exc:
            conn.close()
            raise HilError(
                f"cannot connect to {self.destination}: {type(exc).__name__}: "
                f"{self._scrub(str(exc))}",
                "is the host up and sshd running? (after power on, use wait_reachable)",
            ) from exc
        self._conn = conn
        self.connections_opened += 1
        log.debug("ssh connected to %s", self.destination)
        return conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a dead transport may fail to close; it is gone either way
                log.debug("closing dead connection to %s failed", self.destination)
            self._conn = None

    def __enter__(self) -> Shell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scrub(self, text: str) -> str:
        for secret in (self._password, self._passphrase):
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- operations ------------------------------------------------------------------

    def is_reachable(self) -> bool:
        """True if a connection can be opened and a trivial command runs."""
        try:
            return self.run("true", timeout=self.connect_timeout, check=False).ok
        except HilError:
            self.close()
            return False

    def wait_reachable(self, timeout: float | Deadline, what: str | None = None) -> float:
        """Poll until sshd answers (e.g. after power on). Returns the seconds it took.

        `timeout` may be a `Deadline` shared with other waits (boot banner, then ssh).
        """
        deadline = timeout if isinstance(timeout, Deadline) else Deadline(timeout)
        timeout = deadline.seconds
        started = time.monotonic()
        delay = 0.5
        last_error = ""
        while True:
            try:
                if self.run("true", timeout=max(1.0, min(self.connect_timeout,
                                                          deadline.remaining)),
                            check=False).ok:
                    return time.monotonic() - started
            except HilError as exc:
                last_error = str(exc)
                self.close()
            if deadline.expired:
                raise TimeoutExpired(
                    f"timed out after {timeout:.0f} s waiting for {what or 'ssh'} on "
                    f"{self.destination}" + (f" (last error: {last_error})" if last_error else ""),
                    "check that the board booted (console log) and that sshd starts",
                )
            deadline.sleep(delay)
            delay = min(delay * 1.5, 3.0)

    def run(
        self,
        command: str,
        timeout: float = 60.0,
        check: bool = True,
        on_line: Callable[[str], None] | None = None,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run `command` in the remote shell; raise HilError on non-zero exit if `check`."""
        conn = self.connect()
        kwargs: dict[str, object] = {"warn": True, "timeout": timeout, "pty": False}
        if on_line is not None:
            kwargs.update(hide=False, out_stream=_LineStream(on_line),
                          err_stream=_LineStream(on_line))
        else:
            kwargs["hide"] = True
        kwargs["in_stream"] = io.StringIO(stdin) if stdin is not None else False
        start = time.monotonic()
        try:
            res = conn.run(command, **kwargs)
        except CommandTimedOut as exc:
            self.close()  # the channel may still be busy; start clean next time
            raise TimeoutExpired(
                f"'{command}' on {self.destination} did not finish within {timeout:.0f} s",
                "the command may hang; raise its timeout or check the host",
            ) from exc
        except _CONNECTION_ERRORS as exc:
            self.close()
            raise HilError(
                f"connection to {self.destination} lost while running '{command}': "
                f"{type(exc).__name__}",
                "the host went away (power cycle?); use wait_reachable before retrying",
            ) from exc
        elapsed = time.monotonic() - start
        if res.exited == -1:  # the channel closed without an exit status
            self.close()
            if elapsed >= timeout - 0.1:  # invoke's timer fired but reported it as -1
                raise TimeoutExpired(
                    f"'{command}' on {self.destination} did not finish within {timeout:.0f} s",
                    "the command may hang; raise its timeout or check the host",
                )
            raise HilError(
                f"connection to {self.destination} lost while running '{command}'",
                "the host went away (power cycle?); use wait_reachable before retrying",
            )
        result = CommandResult(command, res.exited, res.stdout, res.stderr, elapsed)
        if check and not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            raise HilError(
                f"'{command}' on {self.destination} exited {result.exit_code}: {tail[0]}",
                "see the command's output in the run log",
            )
        return result

    def put(self, local: str | Path, remote: str) -> None:
        """Copy a local file to `remote` (a path on the host)."""
        if not Path(local).is_file():
            raise HilError(f"cannot copy '{local}': no such file")
        try:
            self.connect().put(str(local), remote)
        except _CONNECTION_ERRORS as exc:
            self.close()
            raise HilError(f"copying '{local}' to {self.destination}:{remote} failed: "
                           f"{type(exc).__name__}: {exc}") from exc

    def get(self, remote: str, local: str | Path) -> None:
        """Copy `remote` from the host to the local path `local`."""
        try:
            self.connect().get(remote, str(local))
        except (*_CONNECTION_ERRORS, FileNotFoundError) as exc:
            self.close()
            raise HilError(f"copying {self.destination}:{remote} to '{local}' failed: "
                           f"{type(exc).__name__}: {exc}") from exc
