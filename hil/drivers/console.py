"""Serial console of a board: always-on logging, `expect`, and reconnect across power cuts.

The console is the only witness of what firmware and early kernel did, so nothing it
prints may be lost. A background thread reads the port (anything pyserial's
``serial_for_url`` accepts: ``socket://host:port``, ``rfc2217://host:port``, a tty path)
and appends every byte to

* ``<name>.raw``  - the bytes exactly as received,
* ``<name>.log``  - one line per console line, prefixed with the UTC time its first byte
  arrived, plus ``--- ... ---`` lines when the port disconnects or reconnects,
* an in-memory text buffer that `expect` searches.

When the port goes away (QEMU killed, the PiKVM's USB serial re-enumerating during a
power cut) the reader keeps reopening it until it is back; the buffer is continuous
across reconnects, so an `expect` started before a power cut matches output printed
after it. Output emitted while nobody was connected is, of course, not seen: for QEMU
use ``wait=on`` or a chardev ``logfile``.

Positions: `mark()` returns the current end of the text; pass it as `since=` to `expect`
to match only output that arrived after that point (e.g. after power on). Without
`since`, `expect` continues from the end of the previous match (pexpect style).
Text is decoded as UTF-8 (invalid bytes become U+FFFD); positions count characters.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import select
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import serial
from serial.urlhandler import protocol_socket

from hil.core.errors import ConfigError, HilError, TimeoutExpired
from hil.core.runs import artifact_dir
from hil.core.timeout import Deadline

_OPEN_ERRORS = (serial.SerialException, OSError)


def _port_url(url: str) -> str:
    """The URL handed to pyserial.

    ser2net does not acknowledge RFC 2217 modem-control (DTR/RTS) requests on every port
    and pyserial then fails to open; a console needs no modem control, so ask pyserial to
    ignore those answers (as labgrid does).
    """
    if url.startswith("rfc2217://") and "ign_set_control" not in url:
        return url + ("&" if "?" in url else "?") + "ign_set_control"
    return url


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Console:
    """A serial console that logs everything and survives the port disappearing."""

    def __init__(
        self,
        url: str,
        log_dir: Path | str | None = None,
        *,
        name: str = "console",
        baudrate: int = 115200,
        reconnect_interval: float = 0.2,
        read_timeout: float = 0.05,
    ) -> None:
        self.url = url
        self.name = name
        self.baudrate = baudrate
        self.reconnect_interval = reconnect_interval
        self.read_timeout = read_timeout
        self.log_dir = Path(log_dir) if log_dir is not None else artifact_dir(name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.raw_log_path = self.log_dir / f"{name}.raw"
        self.line_log_path = self.log_dir / f"{name}.log"

        self._cond = threading.Condition()
        self._text: list[str] = []  # chunks; joined lazily into _joined
        self._joined = ""
        self._length = 0
        self._cursor = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""
        self._line_t0: str | None = None
        self._after_cr = False

        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._raw: IO[bytes] | None = None
        self._lines: IO[str] | None = None
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"Console({self.url!r}, connected={self.connected}, length={self._length})"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Console:
        """Start the reader. The port may be absent yet: it is opened when it appears."""
        if self._thread is not None:
            return self
        try:  # validate the URL now so a typo is a clear error, not a silent retry loop
            serial.serial_for_url(self.url, do_not_open=True)
        except (ValueError, serial.SerialException) as exc:
            raise ConfigError(f"bad console url '{self.url}': {exc}",
                              "use socket://HOST:PORT, rfc2217://HOST:PORT or a tty path") from exc
        self._raw = open(self.raw_log_path, "ab")  # noqa: SIM115 - closed in close()
        self._lines = open(self.line_log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._event(f"console {self.url} opened by hil")
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"console-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the reader, flush the logs (a pending partial line is written too)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_port()
        with self._cond:
            self._flush_partial_line()
            if self._lines is not None:
                self._lines.close()
                self._lines = None
            if self._raw is not None:
                self._raw.close()
                self._raw = None
            self._cond.notify_all()

    def __enter__(self) -> Console:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._port is not None

    def wait_connected(self, timeout: float) -> None:
        deadline = Deadline(timeout)
        with self._cond:
            while self._port is None:
                if deadline.expired:
                    raise TimeoutExpired(
                        f"console {self.url} not connected after {timeout:.0f} s"
                        + (f" (last error: {self.last_error})" if self.last_error else ""),
                        "is the board/QEMU running and the serial URL right?",
                    )
                self._cond.wait(min(0.2, deadline.remaining))

    # -- reader thread ---------------------------------------------------------------

    def _reader(self) -> None:
        while not self._stop.is_set():
            port = self._port
            if port is None:
                port = self._open()
                if port is None:
                    self._stop.wait(self.reconnect_interval)
                    continue
            try:
                data = self._read_chunk(port)
            except _OPEN_ERRORS as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
                continue
            except (TypeError, AttributeError) as exc:  # pyserial closed under our feet
                self._lost(f"port closed: {exc}")
                continue
            if data:
                self._append(data)

    def _read_chunk(self, port: serial.SerialBase) -> bytes:
        """Read what is available without ever dropping bytes on a disconnect.

        pyserial's ``read(n)`` keeps reading until it has `n` bytes and, when the peer
        closes meanwhile, raises and discards what it already had: the last lines before
        a power cut (the most interesting ones) would vanish. So only ask for what is
        known to be there: a socket is read with one ``recv``; ttys and rfc2217 report an
        exact ``in_waiting`` and otherwise get a 1-byte read that waits for data.
        """
        sock = getattr(port, "_socket", None)
        if isinstance(port, protocol_socket.Serial) and isinstance(sock, socket.socket):
            ready, _, _ = select.select([sock], [], [], self.read_timeout)
            if not ready:
                return b""
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):  # spurious wakeup: nothing lost
                return b""
            if not data:
                raise serial.SerialException("socket disconnected (peer closed)")
            return data
        waiting = port.in_waiting
        return port.read(waiting if waiting > 0 else 1)

    def _open(self) -> serial.SerialBase | None:
        try:
            port = serial.serial_for_url(_port_url(self.url), baudrate=self.baudrate,
                                         timeout=self.read_timeout, do_not_open=True)
            # pyserial's open() flushes the input (recv-and-drop on sockets, tcflush on
            # ttys): whatever the peer sent right after connecting would be lost. Over
            # rfc2217 the flushes are "purge" requests that ser2net may never acknowledge.
            port.reset_input_buffer = lambda: None
            port.reset_output_buffer = lambda: None
            port.open()
        except _OPEN_ERRORS as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None
        with self._cond:
            self._port = port
            self.connects += 1
            self._event(f"connected to {self.url} (connection #{self.connects})")
            self._cond.notify_all()
        return port

    def _lost(self, why: str) -> None:
        self.last_error = why
        self._close_port()
        with self._cond:
            self.disconnects += 1
            self._flush_partial_line()
            self._event(f"disconnected ({why}); reconnecting")
            self._cond.notify_all()

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
            if port is not None:
                with contextlib.suppress(*_OPEN_ERRORS):
                    port.close()

    def _append(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        with self._cond:
            if self._raw is not None:
                self._raw.write(data)
                self._raw.flush()
            if text:
                self._text.append(text)
                self._length += len(text)
                self._log_lines(text)
            self._cond.notify_all()

    def _log_lines(self, text: str) -> None:
        if self._after_cr and text.startswith("\n"):  # "\r\n" split across two reads
            text = text[1:]
        if text:
            self._after_cr = text.endswith("\r")
        for piece in text.splitlines(keepends=True):
            if self._line_t0 is None:
                self._line_t0 = _stamp()
            if piece.endswith(("\n", "\r")):
                self._line += piece.rstrip("\r\n")
                self._write_line(self._line_t0, self._line)
                self._line, self._line_t0 = "", None
            else:
                self._line += piece

    def _flush_partial_line(self) -> None:
        if self._line_t0 is not None:
            self._write_line(self._line_t0, self._line)
            self._line, self._line_t0 = "", None

    def _write_line(self, stamp: str, line: str) -> None:
        if self._lines is not None:
            self._lines.write(f"{stamp} {line}\n")
            self._lines.flush()

    def _event(self, what: str) -> None:
        self._write_line(_stamp(), f"--- {what} ---")

    # -- reading what was seen -------------------------------------------------------

    def _all(self) -> str:
        """The whole text so far (call with the condition held)."""
        if self._text:
            self._joined += "".join(self._text)
            self._text.clear()
        return self._joined

    def mark(self) -> int:
        """Current end of the received text; use as `since=` to see only newer output."""
        with self._cond:
            return self._length

    @property
    def position(self) -> int:
        """Where the next `expect` without `since` starts (end of the previous match)."""
        return self._cursor

    def text(self, start: int = 0, end: int | None = None) -> str:
        with self._cond:
            return self._all()[start:end]

    def last_lines(self, n: int = 10, since: int = 0) -> list[str]:
        with self._cond:
            tail = self._all()[since:]
        return tail.splitlines()[-n:]

    def expect(self, pattern: str | re.Pattern[str], timeout: float | Deadline,
               since: int | None = None) -> re.Match[str]:
        """Wait until `pattern` matches output at or after `since` (or after the last match).

        Returns the match; positions in it are absolute (comparable with `mark()`).
        `timeout` may be a shared `Deadline`. On timeout raises `TimeoutExpired` quoting
        the last lines seen.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        start = self._cursor if since is None else since
        deadline = timeout if isinstance(timeout, Deadline) else Deadline(timeout)
        timeout = deadline.seconds
        with self._cond:
            while True:
                m = regex.search(self._all(), start)
                if m:
                    self._cursor = m.end()
                    return m
                if deadline.expired or (self._thread is None and self._lines is None):
                    break
                self._cond.wait(min(0.5, deadline.remaining))
        seen = self.last_lines(10)
        state = "connected" if self.connected else f"disconnected ({self.last_error})"
        quoted = "\n".join(f"  | {line}" for line in seen) if seen else "  | (nothing)"
        raise TimeoutExpired(
            f"timed out after {timeout:.0f} s waiting for /{regex.pattern}/ on console "
            f"{self.name} ({state}); last lines seen:\n{quoted}",
            f"full log: {self.line_log_path}",
        )

    def follow(self, since: int | None = None, stop: threading.Event | None = None,
               poll: float = 0.2) -> Iterator[str]:
        """Yield new text as it arrives (for ``hil console``) until `stop` is set or close()."""
        pos = self.mark() if since is None else since
        while not (stop is not None and stop.is_set()):
            with self._cond:
                if self._length <= pos:
                    if self._thread is None:
                        return
                    self._cond.wait(poll)
                chunk = self._all()[pos:]
            if chunk:
                pos += len(chunk)
                yield chunk

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes, timeout: float = 10.0) -> None:
        """Send raw bytes, waiting up to `timeout` for the port if it is reconnecting."""
        deadline = Deadline(timeout)
        while True:
            self.wait_connected(deadline.remaining)
            with self._port_lock:
                port = self._port
                if port is not None:
                    try:
                        port.write(data)
                        port.flush()
                        return
                    except _OPEN_ERRORS as exc:
                        self.last_error = f"{type(exc).__name__}: {exc}"
            if deadline.expired:
                raise HilError(f"cannot write to console {self.url}: {self.last_error}",
                               "the port went away; is the board/QEMU running?")
            deadline.sleep(self.reconnect_interval)

    def send_line(self, line: str, end: str = "\n", timeout: float = 10.0) -> None:
        self.write((line + end).encode(), timeout=timeout)
