"""A minimal QMP client over a unix socket (stdlib only).

The twin needs only a handful of synchronous commands (quit, system_powerdown,
system_reset, screendump, send-key, input-send-event), so a small line-based
client avoids an extra dependency and an asyncio event loop inside the kvmd server.
Asynchronous events that arrive between replies are collected in `events`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from hil.core.errors import HilError


class QmpError(HilError):
    """QEMU rejected a command or the monitor connection failed."""


class QmpClient:
    """One connection to a QEMU monitor in control mode; use as a context manager."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._buf = b""

    def __enter__(self) -> QmpClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as e:
            sock.close()
            raise QmpError(f"cannot connect to QEMU monitor {self.path}: {e}") from e
        self._sock = sock
        greeting = self._read_message()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting from {self.path}")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except OSError as e:
                raise QmpError(f"QEMU monitor read failed: {e}") from e
            if not chunk:
                raise QmpError("QEMU monitor closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one command and return its `return` value; raise `QmpError` on `error`."""
        if self._sock is None:
            raise QmpError("QMP client is not connected")
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as e:
            raise QmpError(f"QEMU monitor write failed: {e}") from e
        while True:
            reply = self._read_message()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                err = reply["error"]
                raise QmpError(f"QMP {command} failed: {err.get('class')}: {err.get('desc')}")
            return reply.get("return")
