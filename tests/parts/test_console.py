"""hil.drivers.console against a loopback TCP peer that disappears and comes back (like QEMU)."""

from __future__ import annotations

import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hil.core.errors import ConfigError, TimeoutExpired
from hil.core.timeout import Deadline, wait_for
from hil.drivers.console import Console


class VanishingPeer:
    """A TCP 'serial port' on a fixed loopback port that can go away entirely.

    Like QEMU's ``-serial tcp:...,server=on``: while it is down, connecting is refused;
    after a restart it listens on the same port again.
    """

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def up(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(1)

    def accept(self, timeout: float = 10) -> None:
        assert self.listener is not None
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def recv_until(self, token: bytes, timeout: float = 10) -> bytes:
        assert self.conn is not None
        self.conn.settimeout(timeout)
        got = b""
        while token not in got:
            chunk = self.conn.recv(4096)
            assert chunk, "console closed the connection"
            got += chunk
        return got

    def down(self) -> None:
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()
        self.conn = self.listener = None


@pytest.fixture
def peer() -> VanishingPeer:
    p = VanishingPeer()
    yield p
    p.down()


def test_no_byte_lost_and_expect_spans_a_reconnect(peer: VanishingPeer, tmp_path: Path) -> None:
    con = Console(peer.url, tmp_path, name="serial", reconnect_interval=0.1).start()
    try:
        peer.accept()
        con.wait_connected(5)
        since = con.mark()
        result: dict[str, object] = {}

        def wait_ready() -> None:  # started before the power cut, satisfied after it
            try:
                result["m"] = con.expect(r"login: (\w+)", timeout=20, since=since)
            except Exception as exc:  # reported below
                result["err"] = exc

        waiter = threading.Thread(target=wait_ready)
        waiter.start()

        before = b"".join(b"boot line %d\r\n" % i for i in range(2000))
        before += b"bad utf8 \xff\xfe here\n" + b"last words before power cut, no newline"
        peer.send(before)
        peer.down()  # the port disappears right after the data: nothing may be lost
        wait_for(lambda: not con.connected, 10, "the console to notice the disconnect",
                 interval=0.02)
        # the reader keeps retrying while the port is gone: its attempts are refused
        wait_for(lambda: "refused" in (con.last_error or ""), 10,
                 "a refused reconnect attempt", interval=0.02)
        peer.up()
        peer.accept()
        after = b"\r\ncoreboot-4.15 bootblock starting\r\nlogin: root\r\n"
        peer.send(after)
        waiter.join(timeout=25)
        assert "err" not in result, result.get("err")
        m = result["m"]
        assert isinstance(m, re.Match) and m.group(1) == "root"
        assert m.start() >= len(before)  # absolute positions in the whole stream

        full = before + after
        assert (tmp_path / "serial.raw").read_bytes() == full
        assert con.text() == full.decode("utf-8", errors="replace")
        assert con.connects == 2 and con.disconnects >= 1

        log = (tmp_path / "serial.log").read_text()
        assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z boot line 1999$", log, re.M)
        lines = log.splitlines()
        cut = next(i for i, x in enumerate(lines) if "disconnected" in x)
        assert lines[cut - 1].endswith("last words before power cut, no newline")
        assert any("connection #2" in x for x in lines[cut:])
    finally:
        con.close()


def test_mark_excludes_old_output_and_expect_is_sequential(
    peer: VanishingPeer, tmp_path: Path
) -> None:
    with Console(peer.url, tmp_path) as con:
        peer.accept()
        peer.send(b"READY old\n")
        con.expect("READY old", 5)
        mark = con.mark()
        with pytest.raises(TimeoutExpired):
            con.expect("READY", 0.5, since=mark)  # the old READY is before the mark
        peer.send(b"one\ntwo\nREADY new\n")
        assert con.expect(r"READY (\w+)", 5, since=mark).group(1) == "new"
        # without since, expect continues after the previous match
        peer.send(b"x=1\nx=2\n")
        assert con.expect(r"x=(\d)", 5).group(1) == "1"
        assert con.expect(r"x=(\d)", Deadline(5)).group(1) == "2"  # a shared Deadline works
        shared = Deadline(0.5)
        with pytest.raises(TimeoutExpired):
            con.expect("never", shared)
        assert shared.expired


def test_timeout_error_quotes_last_lines(peer: VanishingPeer, tmp_path: Path) -> None:
    with Console(peer.url, tmp_path) as con:
        peer.accept()
        peer.send(b"".join(b"line %d\n" % i for i in range(30)) + b"Kernel panic - not syncing")
        con.expect("not syncing", 5)
        start = time.monotonic()
        with pytest.raises(TimeoutExpired) as exc:
            con.expect("login:", timeout=1)
        assert 0.9 < time.monotonic() - start < 5
        msg = str(exc.value)
        assert "/login:/" in msg and "line 29" in msg and "Kernel panic" in msg
        assert "line 5\n" not in msg  # only the last lines, not the whole log
        assert str(tmp_path / "console.log") in (exc.value.hint or "")


def test_send_line_reaches_peer_and_waits_for_reconnect(
    peer: VanishingPeer, tmp_path: Path
) -> None:
    with Console(peer.url, tmp_path, reconnect_interval=0.1) as con:
        peer.accept()
        con.wait_connected(5)
        con.send_line("echo hello")
        assert peer.recv_until(b"\n") == b"echo hello\n"
        peer.down()
        wait_for(lambda: not con.connected, 10, "the console to notice the disconnect",
                 interval=0.02)
        threading.Timer(0.5, lambda: (peer.up(), peer.accept())).start()
        con.send_line("after reboot", timeout=10)  # blocks until the port is back
        # the console's connect can complete (kernel backlog) before the peer's accept()
        # has returned in its timer thread: wait for the peer side, then read
        wait_for(lambda: peer.conn is not None, 10, "the peer to accept the reconnect",
                 interval=0.02)
        assert peer.recv_until(b"\n") == b"after reboot\n"


def test_follow_yields_live_output(peer: VanishingPeer, tmp_path: Path) -> None:
    with Console(peer.url, tmp_path) as con:
        peer.accept()
        peer.send(b"old\n")
        con.expect("old", 5)
        stop = threading.Event()
        chunks: list[str] = []
        # The mark is taken here, not when the thread first runs the generator: output
        # sent before a late start would otherwise be missed (a race).
        since = con.mark()

        def collect() -> None:
            for chunk in con.follow(since=since, stop=stop):
                chunks.append(chunk)
                if "END" in "".join(chunks):
                    stop.set()

        t = threading.Thread(target=collect)
        t.start()
        peer.send(b"new 1\n")
        peer.send(b"new 2 END\n")
        t.join(timeout=5)
        assert not t.is_alive()
        assert "".join(chunks) == "new 1\nnew 2 END\n"  # from the mark: 'old' excluded


def test_tty_path(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        with Console(os.ttyname(slave), tmp_path, name="tty") as con:
            con.wait_connected(5)
            os.write(master, b"hello over a tty\n")
            assert con.expect("over a (tty)", 5).group(1) == "tty"
            con.send_line("typed")
            got, deadline = b"", Deadline(5)
            while b"typed" not in got and not deadline.expired:
                if select.select([master], [], [], deadline.remaining)[0]:
                    got += os.read(master, 100)
            assert b"typed" in got
    finally:
        os.close(master)
        os.close(slave)
    assert b"hello over a tty" in (tmp_path / "tty.raw").read_bytes()


def test_bad_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bad console url"):
        Console("nosuchscheme://x", tmp_path).start()


def test_output_sent_right_at_connect_is_kept(peer: VanishingPeer, tmp_path: Path) -> None:
    """pyserial flushes input on open(); a QEMU restarting prints at once. Nothing may drop."""
    with Console(peer.url, tmp_path, reconnect_interval=0.02) as con:
        sent = b""
        for cycle in range(10):
            peer.accept()
            data = b"cycle %d greeting\n" % cycle
            peer.send(data)  # immediately after the connection is accepted
            sent += data
            con.expect(f"cycle {cycle} greeting", 5)
            peer.down()
            peer.up()
        assert con.text() == sent.decode()
        assert con.connects == 10


# A 512-byte boot sector: DS=0, print a line on COM1 (port 0x3f8), halt.
_BOOT_CODE = bytes.fromhex("31C08ED8BAF803BE157CAC84C07403EEEBF8F4EBFD")


def _boot_sector(path: Path, message: bytes) -> None:
    code = _BOOT_CODE + message + b"\0"
    path.write_bytes(code.ljust(510, b"\0") + b"\x55\xaa")


def _start_qemu(image: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "16",
         "-drive", f"file={image},format=raw,if=floppy",
         "-chardev", f"socket,id=s0,host=127.0.0.1,port={port},server=on,wait=on",
         "-serial", "chardev:s0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                    reason="qemu-system-x86 not installed")
def test_real_qemu_killed_and_restarted(tmp_path: Path) -> None:
    """QEMU's socket chardev vanishes when QEMU is killed and comes back on restart."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = tmp_path / "boot.img"
    _boot_sector(image, b"guest says READY\r\n")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with Console(f"socket://127.0.0.1:{port}", tmp_path, reconnect_interval=0.1) as con:
            procs.append(_start_qemu(image, port))
            con.expect("guest says READY", 30)
            procs[0].kill()  # power cut: the serial port disappears
            procs[0].wait(10)
            mark = con.mark()
            with pytest.raises(TimeoutExpired):
                con.expect("READY", 1, since=mark)
            assert not con.connected
            procs.append(_start_qemu(image, port))  # power on
            m = con.expect("guest says READY", 30, since=mark)
            assert m.start() >= mark
            assert con.connects == 2
            assert con.text().count("guest says READY") == 2
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def test_line_log_handles_crlf_split_across_reads(peer: VanishingPeer, tmp_path: Path) -> None:
    with Console(peer.url, tmp_path) as con:
        peer.accept()
        peer.send(b"abc\r")
        con.expect("abc", 5)
        time.sleep(0.2)  # make sure the \n arrives in a separate read
        peer.send(b"\ndef\r\n\r\nprogress 1\rprogress 2\n")
        con.expect("progress 2", 5)
    lines = [x.split(" ", 1)[1] for x in (tmp_path / "console.log").read_text().splitlines()
             if not x.split(" ", 1)[1].startswith("---")]
    assert lines == ["abc", "def", "", "progress 1", "progress 2"]


def _start_ser2net(tmp_path: Path, tty: str, port: int) -> subprocess.Popen[bytes]:
    cfg = tmp_path / "ser2net.yaml"
    cfg.write_text(
        "connection: &con1\n"
        f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
        f"  connector: serialdev,{tty},115200n81,local\n"
        "  options:\n"
        "    kickolduser: true\n"
        "    mdns: false\n"
    )
    return subprocess.Popen(["ser2net", "-n", "-c", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("ser2net") is None, reason="ser2net not installed")
def test_rfc2217_through_ser2net_survives_server_restart(tmp_path: Path) -> None:
    """The lab's serial path: ser2net (RFC 2217) in front of a tty; ser2net restarts."""
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_start_ser2net(tmp_path, tty, port)]
    try:
        with Console(f"rfc2217://127.0.0.1:{port}", tmp_path, reconnect_interval=0.1) as con:
            con.wait_connected(10)
            os.write(master, b"firmware says hi\r\n")
            con.expect("firmware says hi", 10)
            con.send_line("root")
            deadline = time.monotonic() + 5
            got = b""
            while b"root\n" not in got and time.monotonic() < deadline:
                got += os.read(master, 100)
            assert b"root\n" in got
            procs[0].kill()  # the serial server goes away (PiKVM reboot)
            procs[0].wait(10)
            mark = con.mark()
            wait_for(lambda: not con.connected, 10, "the console to notice ser2net is gone",
                     interval=0.02)
            procs.append(_start_ser2net(tmp_path, tty, port))
            con.wait_connected(10)
            time.sleep(0.3)
            os.write(master, b"after restart\r\n")
            assert con.expect("after restart", 10, since=mark).start() >= mark
            assert con.connects >= 2
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        os.close(master)
        os.close(slave)
