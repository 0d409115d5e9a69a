"""Pure-logic checks of the twin (no QEMU is started here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hil.core.errors import ConfigError, HilError
from hil.core.timeout import wait_for
from hil.emulated.keys import char_to_chord, text_to_chords, web_key_to_qcode
from hil.emulated.machine import ensure_files, qemu_argv
from hil.emulated.state import (
    Ports,
    StateDir,
    TwinConfig,
    free_ports,
    kill_tracked,
    process_matches,
    tracked_pid,
)


def test_web_keys_map_to_qcodes() -> None:
    assert web_key_to_qcode("KeyA") == "a"
    assert web_key_to_qcode("Digit7") == "7"
    assert web_key_to_qcode("F11") == "f11"
    assert web_key_to_qcode("Enter") == "ret"
    assert web_key_to_qcode("Delete") == "delete"
    with pytest.raises(HilError, match="unknown key name"):
        web_key_to_qcode("KeyAA")


def test_text_becomes_us_layout_chords() -> None:
    assert char_to_chord("a") == ["a"]
    assert char_to_chord("A") == ["shift", "a"]
    assert char_to_chord("!") == ["shift", "1"]
    assert text_to_chords("ls -l\n") == [["l"], ["s"], ["spc"], ["minus"], ["l"], ["ret"]]
    with pytest.raises(HilError, match="cannot type"):
        text_to_chords("ok\u00e9")  # fails before typing anything


def test_config_roundtrip_and_corrupt_state(tmp_path) -> None:
    cfg = TwinConfig(memory_mib=1024, smp=2, ports=Ports(1, 2, 3), extra_qemu_args=["-S"])
    sd = StateDir(tmp_path)
    sd.write_config(cfg)
    assert sd.read_config() == cfg
    sd.config_file.write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt twin state"):
        sd.read_config()
    with pytest.raises(ConfigError, match="no twin state"):
        StateDir(tmp_path / "nothing").read_config()


def test_password_file_is_private(tmp_path) -> None:
    sd = StateDir(tmp_path)
    sd.write_password("s3cret")
    assert sd.read_password() == "s3cret"
    assert (sd.password_file.stat().st_mode & 0o777) == 0o600


def test_long_state_dirs_get_short_socket_paths(tmp_path) -> None:
    deep = StateDir(tmp_path / ("x" * 120))
    assert len(str(deep.qmp_socket)) < 108
    assert deep.qmp_socket != StateDir(tmp_path / ("y" * 120)).qmp_socket
    assert deep.qmp_socket != deep.serial_socket
    short = StateDir(tmp_path / "s")
    assert short.qmp_socket.parent == short.path


def test_qemu_command_line_has_the_twin_hardware(tmp_path) -> None:
    sd = StateDir(tmp_path)
    argv = " ".join(qemu_argv(sd, TwinConfig(ports=Ports(18080, 15555, 12222))))
    assert "-machine q35,smm=on" in argv and "-accel tcg" in argv
    assert f"-bios {sd.chip}" in argv
    assert "hostfwd=tcp:127.0.0.1:12222-:22" in argv
    assert "isa-debugcon,iobase=0xe9" in argv
    assert f"mem-path={sd.pdev},size={512 << 20}" in argv and "ivshmem-plain" in argv
    assert str(sd.path) in argv  # what lets us prove a QEMU pid belongs to this twin


def _unwritten_extents(path) -> int:
    """Extents of `path` that the filesystem reports as allocated but unwritten (what
    fallocate leaves), via FIEMAP; skips where the filesystem has no FIEMAP."""
    import fcntl
    import struct

    fs_ioc_fiemap, unwritten, count = 0xC020660B, 0x800, 64
    buf = bytearray(struct.pack("=QQIIII", 0, (1 << 64) - 1, 0, 0, count, 0) + bytes(56 * count))
    with open(path, "rb") as f:
        try:
            fcntl.ioctl(f.fileno(), fs_ioc_fiemap, buf)
        except OSError as e:
            pytest.skip(f"no FIEMAP on this filesystem ({e})")
    mapped = struct.unpack_from("=I", buf, 20)[0]
    flags = [struct.unpack_from("=I", buf, 32 + 56 * i + 40)[0] for i in range(mapped)]
    return sum(1 for fl in flags if fl & unwritten)


def test_files_are_created_erased_and_preallocated(tmp_path) -> None:
    sd = StateDir(tmp_path)
    cfg = TwinConfig(chip_size=1 << 20, pdev_size=4 << 20)
    ensure_files(sd, cfg)
    assert sd.chip.read_bytes() == b"\xff" * (1 << 20)
    assert sd.pdev.stat().st_size == 4 << 20
    assert sd.pdev.stat().st_blocks * 512 >= 4 << 20  # not sparse
    assert not _unwritten_extents(sd.pdev)  # written zeros, not fallocated
    sd.pdev.write_bytes(b"keep" + bytes((4 << 20) - 4))
    ensure_files(sd, cfg)  # an existing persistent device is never reset
    assert sd.pdev.read_bytes()[:4] == b"keep"


def test_kill_only_processes_of_this_state_dir(tmp_path) -> None:
    marker = str(tmp_path / "mine")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "other"])
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        # right after fork the child still shows the parent's command line
        wait_for(lambda: process_matches(ours.pid, marker), 5, "the child to exec")
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(f"{other.pid}\n")  # a recycled pid: not ours
        assert tracked_pid(pidfile, marker) is None
        assert not kill_tracked(pidfile, marker)
        assert other.poll() is None and not pidfile.exists()
        pidfile.write_text(f"{ours.pid}\n")
        assert process_matches(ours.pid, marker)
        assert kill_tracked(pidfile, marker, timeout=5)
        assert ours.wait(5) is not None
    finally:
        for p in (other, ours):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_free_ports_are_distinct() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
