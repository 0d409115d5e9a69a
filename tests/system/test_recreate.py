"""Recreation of a persisted process (Kernel II) on the target: persist -> cut -> recreate.

The probe is ``wpp-counter`` (kernel/tools): every line it prints carries the counter, a
checksum of its PRNG buffer, register/FPU self-checks, its log file's offset and, with
``--private-map``, a private file mapping's state. A correct recreation prints the very
next counter value with every check ``ok`` and the same buffer checksum, under the same pid.

The twin's guest runs from an initramfs, so ``/tmp`` does not survive a power cut. A real
machine keeps the program's files on disk; here the test stands in for that disk: it copies
the files the process had open (its output, log, state and mapped file) off the target
after the power-loss trigger and puts them back after the boot. Everything in memory
(registers, FPU, buffers, file offsets, the modified private page) comes back only
through the firmware's snapshot.

Refusals damage the snapshot in the twin's persistent-device file while the twin is off
(the way a cut during persisting or a bit flip would) and expect the recreator's message,
the same line in the kernel log, and no process left behind.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil.timeout import wait_for

COUNTER = "/usr/bin/wpp-counter"
LOG = "/tmp/wpp-rc.log"
STATE = "/tmp/wpp-rc.state"
MAP = "/tmp/wpp-rc.map"
LOG_LINE = 64  # wpp-counter's fixed log-line width
MODES = ("eager", "batched", "lazy")

LINE_RE = re.compile(
    r"^wpp-counter: n=(?P<n>\d+) pid=(?P<pid>\d+) sum=(?P<sum>[0-9a-f]+) buf=(?P<buf>\w+) "
    r"fp=\S+ regs=(?P<regs>\w+) xmm=\S+ off=(?P<off>\d+) fd=(?P<fd>\w+) map=(?P<map>\w+) "
    r"mapsum=\S+ state=(?P<state>\w+)$",
    re.M,
)

# Snapshot header (firmware/wpp/include/wpp_abi.h): offsets into the persistent device.
HDR_FORMAT_VERSION = 8
HDR_SECTIONS = 40  # 3 x {u64 offset, u64 length, u32 count, u32 crc32}
HDR_SIZE = 152
HDR_CRC = 148
MARKER = 0x1000
MARKER_SIZE = 40


@dataclass
class Line:
    n: int
    pid: int
    sum: str
    checks: dict[str, str]
    off: int


def _lines(text: str) -> list[Line]:
    out = []
    for m in LINE_RE.finditer(text):
        checks = {k: m[k] for k in ("buf", "regs", "fd", "map", "state")}
        out.append(Line(int(m["n"]), int(m["pid"]), m["sum"], checks, int(m["off"])))
    return out


class Probe:
    """One wpp-counter run across power losses, with its files kept off-target."""

    def __init__(self, wpp: Any, tmp: Path, *, mode: str = "eager", buffer_mib: int = 1,
                 private_map: bool = False) -> None:
        self.wpp = wpp
        self.target = wpp.target
        self.tmp = tmp
        self.mode = mode
        args = (f"--period-ms 200 --buffer-mib {buffer_mib} --log-file {LOG} "
                f"--state-file {STATE}")
        self.files = [LOG, STATE]
        if private_map:
            args += f" --private-map {MAP}"
            self.files.append(MAP)
        self.run(f"rm -f {LOG} {STATE} {MAP} /tmp/wpp-rc.out")  # WppSession.start: name rc
        # a process a failed test left tracked would block tracking and restoring
        self.run("p=$(cat /sys/kernel/wpp/tracked_pid); [ $p = 0 ] || kill -9 $p")
        wait_for(lambda: self.run("cat /sys/kernel/wpp/tracked_pid").stdout.strip() == "0",
                 30, "no tracked process (a previous one still exiting)")
        self.set_mode(mode)
        self.prog = wpp.start(f"{COUNTER} {args}", name="rc")
        self.files.append(self.prog.out_path)
        self.pid = self.prog.pid
        self.saved: dict[str, Path] = {}
        self.last: Line | None = None
        self.wait_lines(3, timeout=120 + 2 * buffer_mib)

    def run(self, cmd: str, timeout: float = 60, check: bool = True) -> Any:
        return self.target.shell.run(cmd, timeout=timeout, check=check)

    def set_mode(self, mode: str) -> None:
        self.run(f"echo {mode} > /sys/module/wpp/parameters/mode")

    def lines(self) -> list[Line]:
        return _lines(self.wpp.output(self.prog))

    def wait_lines(self, count: int, *, after: int = -1, timeout: float = 60) -> list[Line]:
        def enough() -> list[Line] | None:
            new = [ln for ln in self.lines() if ln.n > after]
            return new if len(new) >= count else None

        return wait_for(enough, timeout, f"{count} wpp-counter lines after n={after}")

    def persist(self) -> None:
        """Power-loss trigger, copy the process' files off, cut mains (twin stays off)."""
        self.wpp.trigger()
        lines = self.lines()
        assert lines, "the counter printed nothing before the power loss"
        self.last = lines[-1]
        assert self.last.pid == self.pid
        self.saved = {}
        for i, remote in enumerate(self.files):
            local = self.tmp / f"file{i}"
            self.target.shell.get(remote, local)
            self.saved[remote] = local
        self.target.power_cut()

    def boot(self, *, restore_files: bool = True, skip: tuple[str, ...] = ()) -> None:
        self.target.boot()
        self.set_mode(self.mode)
        if restore_files:
            self.put_files(skip)

    def put_files(self, skip: tuple[str, ...] = ()) -> None:
        for remote, local in self.saved.items():
            if remote not in skip:
                self.target.shell.put(local, remote)

    def recreate(self, args: str = "", binary: str = COUNTER) -> Any:
        return self.run(f"wpp-recreate {args} {binary}".replace("  ", " "), timeout=600,
                        check=False)

    def assert_continues(self, res: Any) -> list[Line]:
        """The recreated counter prints n+1.. with all checks ok, same pid and checksum."""
        assert res.ok, f"wpp-recreate failed: {res.stderr.strip() or res.stdout.strip()}"
        m = re.search(r"^wpp-recreate: recreated \S+ pid (\d+) as pid (\d+) ", res.stdout, re.M)
        assert m, res.stdout
        assert int(m[1]) == self.pid
        if int(m[2]) != self.pid:  # only when the pid is taken, and then it says by whom
            assert f"original pid {self.pid} in use by " in res.stdout, res.stdout
            self.pid = self.prog.pid = int(m[2])
        assert self.last is not None
        new = self.wait_lines(2, after=self.last.n, timeout=120)
        first = new[0]
        assert first.n == self.last.n + 1, f"counter resumed at {first.n}, not {self.last.n + 1}"
        for ln in new:
            assert ln.pid == self.pid  # getpid() of the recreated process
            assert ln.sum == self.last.sum, "buffer checksum changed"
            bad = {k: v for k, v in ln.checks.items() if v not in ("ok", "none")}
            assert not bad, f"n={ln.n}: failed self-checks {bad}"
            assert ln.off == ln.n * LOG_LINE, "log file offset lost"
        tracked = self.run("cat /sys/kernel/wpp/tracked_pid").stdout.strip()
        assert tracked == str(self.pid), "the recreated process is not tracked again"
        flag = self.run(f"cat /proc/{self.pid}/process_persistence").stdout
        assert "true" in flag
        return new

    def assert_refused(self, res: Any, message: str) -> None:
        assert not res.ok, f"wpp-recreate succeeded but should refuse: {res.stdout}"
        assert res.exit_code == 1
        assert f"wpp-recreate: error: {message}" in res.stderr, res.stderr
        assert "recreated" not in res.stdout
        ps = self.run("pidof wpp-counter", check=False)
        assert not ps.stdout.strip(), f"a counter runs after a refusal: {ps.stdout}"

    def assert_kernel_said(self, message: str) -> None:
        log = self.run("dmesg").stdout
        assert f"wpp: recreate refused: {message}" in log, log[-2000:]

    def stop(self) -> None:
        self.run(f"kill -9 {self.pid} 2>/dev/null; true", check=False)


# -- snapshot damage (twin off, pdev file on the host) ---------------------------------------


def _patch(pdev: Path, offset: int, data: bytes) -> None:
    with pdev.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def _read(pdev: Path, offset: int, size: int) -> bytes:
    with pdev.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _section(pdev: Path, index: int) -> tuple[int, int]:
    off, length, _count, _crc = struct.unpack_from(
        "<QQII", _read(pdev, HDR_SECTIONS + 24 * index, 24))
    return off, length


def _reseal(pdev: Path, section: int) -> None:
    """Recompute a section's CRC, the header CRC and the marker (as a valid persist would)."""
    off, length = _section(pdev, section)
    crc = zlib.crc32(_read(pdev, off, length))
    _patch(pdev, HDR_SECTIONS + 24 * section + 20, struct.pack("<I", crc))
    hdr = bytearray(_read(pdev, 0, HDR_SIZE))
    hdr[HDR_CRC:HDR_CRC + 4] = b"\0" * 4
    hcrc = zlib.crc32(bytes(hdr))
    _patch(pdev, HDR_CRC, struct.pack("<I", hcrc))
    marker = bytearray(_read(pdev, MARKER, MARKER_SIZE))
    marker[16:20] = struct.pack("<I", hcrc)
    marker[36:40] = b"\0" * 4
    _patch(pdev, MARKER + 16, struct.pack("<I", hcrc))
    _patch(pdev, MARKER + 36, struct.pack("<I", zlib.crc32(bytes(marker))))


def _damage(pdev: Path, kind: str) -> None:
    assert _read(pdev, 0, 8) == b"WPPSNAP1", "no snapshot header on the persistent device"
    if kind == "no_snapshot":
        _patch(pdev, 0, b"\0" * (2 * 4096))
    elif kind == "incomplete":  # what a cut while persisting leaves: no completion marker
        _patch(pdev, MARKER, b"\0" * MARKER_SIZE)
    elif kind == "corrupt":  # bit flips inside the region list
        off, length = _section(pdev, 1)
        mid = off + length // 2
        _patch(pdev, mid, bytes(b ^ 0x5A for b in _read(pdev, mid, 8)))
    elif kind == "format_version":
        _patch(pdev, HDR_FORMAT_VERSION, struct.pack("<I", 99))
    elif kind == "pcb_version":  # a validly sealed snapshot whose PCB is from the future
        off, _ = _section(pdev, 0)
        _patch(pdev, off + 4, struct.pack("<H", 99))
        _reseal(pdev, 0)
    else:
        raise AssertionError(kind)


DAMAGE = {
    "no_snapshot": "no snapshot on the persistent device",
    "incomplete": "snapshot incomplete: its completion marker is missing",
    "corrupt": "snapshot corrupt: a checksum does not match",
    "format_version": "snapshot format version not supported by the firmware",
    "pcb_version": "process control block version 99",
}


# -- tests ------------------------------------------------------------------------------------


def _layout(probe: Probe) -> list[tuple[str, str, str]]:
    """(range, perms, path) of each mapping, as /proc/<pid>/maps shows it."""
    out = []
    for line in probe.run(f"cat /proc/{probe.pid}/maps").stdout.splitlines():
        f = line.split()
        out.append((f[0], f[1], f[5] if len(f) > 5 else ""))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_counter_continues_after_power_loss(wpp: Any, tmp_path: Path, mode: str) -> None:
    """Registers, FPU/SIMD, buffer, file offset, pid and signal handlers come back, every
    mapping at its address although the guest randomizes layouts (ASLR on); tracked again."""
    probe = Probe(wpp, tmp_path, mode=mode)
    assert probe.run("cat /proc/sys/kernel/randomize_va_space").stdout.strip() == "2"
    layout = _layout(probe)
    probe.persist()
    probe.boot()
    new = probe.assert_continues(probe.recreate())
    assert _layout(probe) == layout
    # stdout and stderr (2>&1) still share one open file: one offset
    fdinfo = probe.run(f"kill -STOP {probe.pid}; grep -h pos: /proc/{probe.pid}/fdinfo/1 "
                       f"/proc/{probe.pid}/fdinfo/2; kill -CONT {probe.pid}").stdout
    pos = fdinfo.split()[1::2]
    assert len(pos) == 2 and pos[0] == pos[1], f"stdout/stderr offsets diverged: {fdinfo}"
    # signal handlers came back: SIGUSR1 (verify now) does not kill, SIGTERM ends cleanly
    probe.run(f"kill -USR1 {probe.pid}")
    probe.wait_lines(2, after=new[-1].n)
    assert probe.wpp.alive(probe.prog)
    probe.run(f"kill -TERM {probe.pid}")
    done = wait_for(lambda: re.search(r"^wpp-counter: done n=\d+ bad=(\d+)$",
                                      probe.wpp.output(probe.prog), re.M), 30, "counter's end")
    assert done[1] == "0", "an iteration failed its self-checks"


@pytest.mark.parametrize("mib", [1, 10, 100])
def test_buffers_byte_exact(wpp: Any, tmp_path: Path, mib: int) -> None:
    """The PRNG buffer's order-sensitive checksum over every byte is unchanged."""
    probe = Probe(wpp, tmp_path, mode="batched", buffer_mib=mib)
    probe.persist()
    probe.boot()
    res = probe.recreate()
    probe.assert_continues(res)
    print(res.stdout.strip())
    print(probe.run("dmesg | grep 'wpp: recreated'").stdout.strip())
    probe.stop()


def test_private_file_mapping_keeps_modified_page(wpp: Any, tmp_path: Path) -> None:
    """The COW page of a MAP_PRIVATE file mapping comes back; the file stays unmodified."""
    probe = Probe(wpp, tmp_path, private_map=True)
    probe.persist()
    probe.boot()
    before = probe.run(f"md5sum {MAP}").stdout.split()[0]
    new = probe.assert_continues(probe.recreate())
    assert all(ln.checks["map"] == "ok" for ln in new)
    assert probe.run(f"md5sum {MAP}").stdout.split()[0] == before
    probe.stop()


def test_five_cycles_in_a_row(wpp: Any, tmp_path: Path) -> None:
    """A recreated process is tracked again and survives the next power loss, five times."""
    probe = Probe(wpp, tmp_path)
    for cycle in range(5):
        probe.mode = MODES[cycle % len(MODES)]
        probe.persist()
        probe.boot()
        new = probe.assert_continues(probe.recreate())
        probe.wait_lines(2, after=new[0].n)
    probe.stop()


def test_refusals_leave_the_snapshot_usable(wpp: Any, tmp_path: Path) -> None:
    """Missing file and wrong binary refuse without consuming the snapshot; a tracked
    process blocks a restore; a consumed snapshot refuses unless --force."""
    probe = Probe(wpp, tmp_path)
    probe.persist()
    probe.boot(skip=(LOG,))

    res = probe.recreate()
    probe.assert_refused(res, f"open file {LOG} (fd 3) is missing")
    probe.assert_kernel_said(f"open file {LOG} (fd 3) is missing")

    res = probe.recreate(binary="/usr/bin/wpp-synth")
    probe.assert_refused(
        res, f"wrong binary: the snapshot is of {COUNTER}, not /usr/bin/wpp-synth")

    probe.put_files()
    probe.assert_continues(probe.recreate())
    res = probe.recreate()  # while the recreated process is tracked: its state would be lost
    assert res.exit_code == 1
    assert f"pid {probe.pid} is tracked: restoring would discard its firmware state" in res.stderr
    probe.stop()

    res = probe.recreate()
    msg = "snapshot already recreated (consumed); force to recreate it again"
    probe.assert_refused(res, msg)
    probe.assert_kernel_said(msg)

    probe.put_files()  # the same snapshot again: the files as they were at the power loss
    res = probe.recreate("--force")
    probe.assert_continues(res)
    assert "forced over consumed" in res.stdout
    probe.stop()


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_refuses_damaged_snapshot(wpp: Any, tmp_path: Path, kind: str) -> None:
    probe = Probe(wpp, tmp_path)
    probe.persist()
    _damage(wpp.target.pdev_path, kind)
    probe.boot()
    res = probe.recreate()
    probe.assert_refused(res, DAMAGE[kind])
    probe.assert_kernel_said(DAMAGE[kind])
