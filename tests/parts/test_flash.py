"""hil.drivers.flash against real flashrom with emulated chips (dummy programmer), locally and
over a real SSH server on loopback."""

from __future__ import annotations

import glob
import hashlib
import os
import shlex
import struct
import subprocess
from pathlib import Path

import pytest
import sshd_fixture
from sshd_fixture import SshServer

from hil.core.errors import ConfigError, MissingToolError
from hil.drivers.flash import FlashError, Flashrom
from hil.drivers.ifd import ifd_regions
from hil.drivers.runner import SshRunner
from hil.drivers.shell import Shell

sshd = sshd_fixture.sshd  # a real sshd on a loopback port

MiB = 1 << 20


def variable_chip(path: Path, size: int = MiB) -> str:
    return f"dummy:emulate=VARIABLE_SIZE,size={size},image={path}"


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def with_descriptor(data: bytes, bios: tuple[int, int], me: tuple[int, int]) -> bytes:
    """`data` with a minimal Intel flash descriptor (regions fd, bios, me) in its first 4 KiB."""
    img = bytearray(data)
    img[:0x1000] = bytes(0x1000)
    struct.pack_into("<I", img, 0x10, 0x0FF0A55A)
    fcba, frba = 0x30, 0x40
    struct.pack_into("<I", img, 0x14, (fcba >> 4) | ((frba >> 4) << 16) | (4 << 24))

    def reg(base: int, limit: int) -> int:
        return (base >> 12) | ((limit >> 12) << 16)

    for i, r in enumerate([reg(0, 0xFFF), reg(*bios), reg(*me), 0x7FFF, 0x7FFF]):
        struct.pack_into("<I", img, frba + 4 * i, r)
    return bytes(img)


@pytest.fixture
def chip(tmp_path: Path) -> tuple[Path, bytes]:
    """A 1 MiB emulated chip file with random content."""
    path = tmp_path / "chip.bin"
    return path, random_file(path, MiB)


def test_tool_version_and_probe(chip: tuple[Path, bytes], tmp_path: Path) -> None:
    fr = Flashrom(variable_chip(chip[0]), backup_dir=tmp_path / "b")
    tool = fr.tool()
    assert tool.path.endswith("flashrom") and tool.version not in ("", "unknown")
    info = fr.probe()
    assert info.size == MiB and info.name == "Opaque flash chip"
    with pytest.raises(FlashError, match="the configuration says 2097152"):
        Flashrom(variable_chip(chip[0]), chip_size=2 * MiB, backup_dir=tmp_path / "b").probe()


def test_write_backs_up_then_writes_and_verifies(chip: tuple[Path, bytes], tmp_path: Path) -> None:
    path, original = chip
    image = tmp_path / "new.rom"
    new = random_file(image, MiB)
    fr = Flashrom(variable_chip(path), chip_size=MiB, backup_dir=tmp_path / "backups")
    res = fr.write(image)
    assert path.read_bytes() == new
    assert res.backup.path.read_bytes() == original
    assert res.backup.sha256 == hashlib.sha256(original).hexdigest()
    assert res.backup.sha256_path.read_text() == f"{res.backup.sha256}  {res.backup.path.name}\n"
    assert res.backup.check()
    assert res.image_sha256 == hashlib.sha256(new).hexdigest()
    assert "VERIFIED" in res.output
    assert fr.verify(image) is True
    other = tmp_path / "other.rom"
    random_file(other, MiB)
    assert fr.verify(other, check=False) is False
    with pytest.raises(FlashError, match="does not match"):
        fr.verify(other)
    back = fr.read(tmp_path / "readback.bin")
    assert back.path.read_bytes() == new
    # a second write of the same image: flashrom skips its verify, hil verifies anyway
    res2 = fr.write(image)
    assert "VERIFIED" in res2.output and res2.backup.path != res.backup.path
    assert res2.backup.path.read_bytes() == new


@pytest.mark.parametrize("size", [MiB // 2, 2 * MiB, MiB + 1])
def test_wrong_size_refused_before_touching_chip(
    chip: tuple[Path, bytes], tmp_path: Path, size: int
) -> None:
    path, original = chip
    mtime = path.stat().st_mtime_ns
    image = tmp_path / "wrong.rom"
    random_file(image, size)
    backups = tmp_path / "backups"
    fr = Flashrom(variable_chip(path), backup_dir=backups)
    with pytest.raises(FlashError, match=f"has {size} bytes but the chip has {MiB}") as exc:
        fr.write(image)
    assert exc.value.backup is None  # refused before even reading the chip
    assert path.read_bytes() == original and path.stat().st_mtime_ns == mtime
    assert not glob.glob(str(backups / "backup-*"))


def test_write_failure_keeps_backup_and_restore_command_works(tmp_path: Path) -> None:
    # A W25Q128FV whose page-program command is silently ignored: flashrom erases, writes
    # nothing and reports "Verifying flash... FAILED" (a real failure flashrom detects).
    path = tmp_path / "w25q.bin"
    original = random_file(path, 16 * MiB)
    image = tmp_path / "new.rom"
    random_file(image, 16 * MiB)
    broken = f"dummy:emulate=W25Q128FV,image={path},spi_ignorelist=02"
    fr = Flashrom(broken, backup_dir=tmp_path / "backups")
    with pytest.raises(FlashError, match=r"writing new\.rom failed: .*FAILED") as exc:
        fr.write(image)
    err = exc.value
    assert err.backup is not None and err.backup.path.read_bytes() == original
    assert err.backup.check()
    assert path.read_bytes() != original  # the chip really was damaged (erased)
    assert err.restore_command is not None
    assert err.restore_command in (err.hint or "")
    argv = shlex.split(err.restore_command)
    assert argv[-2:] == ["-w", str(err.backup.path)]
    # "fix the clip" and run the command exactly as given (minus the simulated fault)
    argv = [a.replace(",spi_ignorelist=02", "") for a in argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "VERIFIED" in out
    assert path.read_bytes() == original


def test_wp_disable_runs_before_write(tmp_path: Path) -> None:
    path = tmp_path / "w25q.bin"
    random_file(path, 16 * MiB)
    image = tmp_path / "new.rom"
    new = random_file(image, 16 * MiB)
    backups = tmp_path / "backups"
    fr = Flashrom(f"dummy:emulate=W25Q128FV,image={path},spi_status=0x1c", wp_disable=True,
                  backup_dir=backups)
    fr.write(image)
    assert path.read_bytes() == new
    log = (backups / "flashrom.log").read_text()
    assert log.index("--wp-disable --wp-range=0,0") < log.index(f"-w {image.resolve()}")
    assert "Disabled hardware protection" in log


def test_wp_pin_asserted_refuses_with_nothing_written(tmp_path: Path) -> None:
    # Status register protected (SRP0) and the WP# pin active: flashrom cannot unprotect.
    path = tmp_path / "w25q.bin"
    original = random_file(path, 16 * MiB)
    image = tmp_path / "new.rom"
    random_file(image, 16 * MiB)
    fr = Flashrom(f"dummy:emulate=W25Q128FV,image={path},spi_status=0x9c,hwwp=yes",
                  wp_disable=True, backup_dir=tmp_path / "backups")
    with pytest.raises(FlashError, match="disabling write protection failed") as exc:
        fr.write(image)
    assert "WP" in str(exc.value)
    assert path.read_bytes() == original
    assert exc.value.backup is not None and exc.value.backup.path.read_bytes() == original


def test_bios_region_write_with_ifd(tmp_path: Path) -> None:
    bios, me = (0x80000, 0xFFFFF), (0x1000, 0x7FFFF)
    path = tmp_path / "chip.bin"
    original = with_descriptor(os.urandom(MiB), bios, me)
    path.write_bytes(original)
    image = tmp_path / "coreboot.rom"
    new = with_descriptor(os.urandom(MiB), bios, me)
    image.write_bytes(new)
    assert ifd_regions(new) == {"fd": (0, 0xFFF), "bios": bios, "me": me}
    fr = Flashrom(variable_chip(path), ifd_region="bios", backup_dir=tmp_path / "b")
    res = fr.write(image)
    chip = path.read_bytes()
    assert chip[0x80000:] == new[0x80000:]  # the bios region was written
    assert chip[:0x80000] == original[:0x80000]  # descriptor and ME untouched
    assert res.backup.path.read_bytes() == original
    assert "-N --ifd -i bios" in res.command
    assert fr.verify(image)


def test_ifd_checks_refuse_before_writing(tmp_path: Path) -> None:
    bios, me = (0x80000, 0xFFFFF), (0x1000, 0x7FFFF)
    path = tmp_path / "chip.bin"
    original = with_descriptor(os.urandom(MiB), bios, me)
    path.write_bytes(original)
    fr = Flashrom(variable_chip(path), ifd_region="bios", backup_dir=tmp_path / "b")

    other_layout = tmp_path / "other-layout.rom"
    other_layout.write_bytes(with_descriptor(os.urandom(MiB), (0x40000, 0xFFFFF),
                                             (0x1000, 0x3FFFF)))
    with pytest.raises(FlashError, match=r"0x80000-0xfffff on the chip but 0x40000-0xfffff"):
        fr.write(other_layout)

    no_ifd = tmp_path / "no-ifd.rom"
    random_file(no_ifd, MiB)
    with pytest.raises(FlashError, match="no Intel flash descriptor"):
        fr.write(no_ifd)

    region_only = tmp_path / "bios-only.rom"
    random_file(region_only, 0x80000)
    with pytest.raises(FlashError, match="has 524288 bytes but the chip has") as exc:
        fr.write(region_only)
    assert "full-chip image" in (exc.value.hint or "")
    assert path.read_bytes() == original


def test_bad_configuration_and_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Flashrom("")
    with pytest.raises(ConfigError, match="unknown flash descriptor region"):
        Flashrom("internal", ifd_region="bois")
    fr = Flashrom("internal", flashrom="/nonexistent/flashrom", backup_dir=tmp_path)
    with pytest.raises(MissingToolError) as exc:
        fr.tool()
    assert "apt-get install flashrom" in (exc.value.hint or "")
    with pytest.raises(Exception, match="does not exist"):
        Flashrom("internal").write(tmp_path / "missing.rom")


def test_remote_write_over_ssh(sshd: SshServer, tmp_path: Path) -> None:
    path = tmp_path / "remote-chip.bin"
    original = random_file(path, MiB)
    image = tmp_path / "new.rom"
    new = random_file(image, MiB)
    with Shell(**sshd.shell_kwargs()) as shell:
        runner = SshRunner(shell)
        fr = Flashrom(variable_chip(path), runner=runner, chip_size=MiB,
                      backup_dir=tmp_path / "local-backups")
        assert fr.tool().host == shell.destination
        res = fr.write(image)
        assert path.read_bytes() == new
        assert res.backup.path.parent == tmp_path / "local-backups"
        assert res.backup.path.read_bytes() == original and res.backup.check()
        assert len(runner.temp_dirs_made) == 2  # backup read, image upload
        assert not any(Path(d).exists() for d in runner.temp_dirs_made)  # cleaned up
        assert fr.verify(image)
        back = fr.read(tmp_path / "readback.bin")
        assert back.path.read_bytes() == new


def test_remote_failure_gives_working_ssh_restore_command(sshd: SshServer, tmp_path: Path) -> None:
    path = tmp_path / "w25q.bin"
    original = random_file(path, 16 * MiB)
    image = tmp_path / "new.rom"
    random_file(image, 16 * MiB)
    with Shell(**sshd.shell_kwargs()) as shell:
        fr = Flashrom(f"dummy:emulate=W25Q128FV,image={path},spi_ignorelist=02",
                      runner=SshRunner(shell), backup_dir=tmp_path / "local-backups")
        with pytest.raises(FlashError) as exc:
            fr.write(image)
    err = exc.value
    assert err.backup is not None and err.backup.path.read_bytes() == original
    cmd = err.restore_command or ""
    assert cmd.startswith(f"ssh -p {sshd.port} -i {sshd.key_file} {sshd.user}@127.0.0.1 ")
    assert str(err.backup.path) in str(err)  # local copy named too
    remote_cmd = shlex.split(cmd)[-1]
    remote_backup = shlex.split(remote_cmd)[-1]
    assert remote_backup.startswith("/tmp/hil-") and Path(remote_backup).read_bytes() == original
    # run it as printed, through the real ssh client (lab host keys change: no checking)
    argv = shlex.split(cmd.replace(",spi_ignorelist=02", ""))
    argv[1:1] = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "BatchMode=yes"]
    subprocess.run(argv, capture_output=True, check=True, timeout=60)
    assert path.read_bytes() == original
    subprocess.run(["rm", "-rf", str(Path(remote_backup).parent)], check=True)


def test_ifd_parser_modern_layout() -> None:
    """A Skylake+ style descriptor: 16 region entries up to FMBA, unused ones 0x7fff."""
    img = bytearray(b"\xff" * 0x2000)
    img[:0x1000] = bytes(0x1000)
    struct.pack_into("<I", img, 0x10, 0x0FF0A55A)
    struct.pack_into("<I", img, 0x14, 0x03 | (0x04 << 16))  # FCBA 0x30, FRBA 0x40
    struct.pack_into("<I", img, 0x18, 0x08 | (0x10 << 16))  # FMBA 0x80, FPSBA 0x100
    entries = [0x7FFF] * 16
    entries[0] = 0x00000000  # fd 0x0-0xfff
    entries[1] = (0x1000) | (0x1FFF << 16)  # bios 0x1000000-0x1ffffff
    entries[2] = (0x0001) | (0x0FFF << 16)  # me 0x1000-0xffffff
    entries[8] = (0x0100) | (0x01FF << 16)  # ec
    for i, e in enumerate(entries):
        struct.pack_into("<I", img, 0x40 + 4 * i, e)
    struct.pack_into("<I", img, 0x80, 0xFFFFFFFF)  # master section right after
    assert ifd_regions(bytes(img)) == {
        "fd": (0, 0xFFF), "bios": (0x1000000, 0x1FFFFFF), "me": (0x1000, 0xFFFFFF),
        "ec": (0x100000, 0x1FFFFF)}
    assert ifd_regions(bytes(0x1000)) is None
    assert ifd_regions(b"short") is None


def test_local_runner_reports_exit_codes_signals_and_timeouts() -> None:
    from hil.core.errors import TimeoutExpired
    from hil.drivers.runner import LocalRunner

    r = LocalRunner()
    lines: list[str] = []
    res = r.run(["sh", "-c", "echo out; echo err >&2; exit 4"], timeout=10, on_line=lines.append)
    assert (res.exit_code, res.stdout, res.stderr) == (4, "out\n", "err\n")
    assert sorted(lines) == ["err", "out"]
    assert r.run(["sh", "-c", "kill -9 $$"], timeout=10).exit_code == -9
    with pytest.raises(TimeoutExpired, match="within 1 s"):
        r.run(["sleep", "5"], timeout=1)
    assert r.which("flashrom") is not None and r.which("no-such-tool-xyz") is None
