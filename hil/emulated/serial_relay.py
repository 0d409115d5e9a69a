"""The twin's ser2net: a TCP serial endpoint that outlives power cycles.

On the lab board the UART is exported by ser2net on the PiKVM, which keeps listening
while the board is off, so a client that stays connected sees the firmware banner of
the next boot. QEMU's own socket chardev dies with QEMU and drops whatever is printed
before a client reconnects (the coreboot banner comes ~0.1 s after power-on). So the
daemon owns both ends: a unix socket QEMU connects to at startup (before the guest runs,
so nothing is lost) and the loopback TCP port clients use. Bytes from QEMU go to every
connected client and to ``serial.log``; bytes from clients go to the guest.

Like a real UART, the board hears only what is typed while it is powered: bytes a client
sends while no QEMU is connected are dropped, never delivered to the next boot. A client's
bytes are read and routed under the same lock that installs a new QEMU, and installing one
first discards what clients sent before it, so there is no window in which bytes typed
while off are read before the new QEMU arrives and forwarded to it after.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class SerialRelay:
    """Relay between QEMU's serial (unix socket, QEMU is the client) and TCP clients."""

    def __init__(self, qemu_socket: Path, tcp_port: int, logfile: Path) -> None:
        self.qemu_socket = qemu_socket
        self.logfile = logfile
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._qemu: socket.socket | None = None
        self._stop = threading.Event()
        with contextlib.suppress(FileNotFoundError):
            qemu_socket.unlink()
        self._unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._unix.bind(str(qemu_socket))
        self._unix.listen(2)
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._tcp.bind(("127.0.0.1", tcp_port))
        except OSError:
            self._unix.close()
            self._tcp.close()
            raise
        self._tcp.listen(4)
        self.port = self._tcp.getsockname()[1]
        self._log = open(logfile, "ab", buffering=0)  # noqa: SIM115 - lives with the relay
        for listener, adopt, pump, name in (
                (self._unix, self._adopt_qemu, self._pump_qemu, "serial-qemu"),
                (self._tcp, self._adopt_client, self._pump_client, "serial-client")):
            threading.Thread(target=self._serve, args=(listener, adopt, pump, name),
                             name=name, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        for s in (self._unix, self._tcp):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        with self._lock:
            for c in [*self._clients, *([self._qemu] if self._qemu else [])]:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)  # wakes a pump waiting on it
                with contextlib.suppress(OSError):
                    c.close()
            self._clients.clear()
        with contextlib.suppress(FileNotFoundError):
            self.qemu_socket.unlink()
        self._log.close()

    def _serve(self, listener: socket.socket, adopt: Callable[[socket.socket], None],
               pump: Callable[[socket.socket], None], name: str) -> None:
        """Accept until close() shuts the listener; each connection gets its own pump thread."""
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            adopt(conn)
            threading.Thread(target=pump, args=(conn,), daemon=True, name=f"{name}-pump").start()

    def _adopt_qemu(self, conn: socket.socket) -> None:
        with self._lock:
            # What clients typed before this power-on was typed into a board without
            # power (or into the previous boot): a UART would have lost it.
            for c in self._clients:
                self._discard_pending(c)
            old, self._qemu = self._qemu, conn
        if old is not None:  # hang up on it (shutdown: its pump may still be in recv)
            with contextlib.suppress(OSError):
                old.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                old.close()

    def _adopt_client(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._clients.append(conn)

    @staticmethod
    def _chunks(conn: socket.socket) -> Iterator[bytes]:
        """What a peer sends, until it hangs up or the socket fails (both end a pump alike)."""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            yield data

    def _pump_qemu(self, conn: socket.socket) -> None:
        for data in self._chunks(conn):
            with contextlib.suppress(ValueError, OSError):
                self._log.write(data)
            with self._lock:
                clients = list(self._clients)
            for c in clients:
                try:
                    c.sendall(data)
                except OSError:
                    self._drop(c)
        with self._lock:
            if self._qemu is conn:
                self._qemu = None
        with contextlib.suppress(OSError):
            conn.close()

    @staticmethod
    def _discard_pending(conn: socket.socket) -> None:
        """Drop what `conn` has sent and nobody read yet (never its end-of-stream)."""
        while True:
            try:
                if not conn.recv(65536, socket.MSG_DONTWAIT | socket.MSG_PEEK):
                    return  # the client hung up: leave that for its pump to see
                conn.recv(65536, socket.MSG_DONTWAIT)
            except OSError:  # BlockingIOError: nothing (more) pending
                return

    def _pump_client(self, conn: socket.socket) -> None:
        """Forward a client's bytes to the QEMU that is connected when they are read.

        The read and the choice of QEMU happen under the lock `_adopt_qemu` holds, so
        bytes sent while the board was off cannot reach the next boot (see the module
        docstring). A pump waits with select() outside the lock, so it never blocks
        adoption.
        """
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([conn], [], [], 1.0)
            except (OSError, ValueError):  # closed under us
                break
            if not ready:
                continue
            with self._lock:
                try:
                    data = conn.recv(4096, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue  # discarded by _adopt_qemu meanwhile
                except OSError:
                    break
                qemu = self._qemu
            if not data:
                break
            if qemu is not None:  # typing into a powered-off board goes nowhere
                with contextlib.suppress(OSError):
                    qemu.sendall(data)
        self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._clients:
                self._clients.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()
