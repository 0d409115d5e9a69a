"""The twin's guest initramfs: contents, permissions, static-ness and reproducibility.

Reads the archive itself (tests/rootfs/rootfs_newc.py) rather than trusting build.sh's manifest."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from rootfs_build import BUILD, REPO, run_build
from rootfs_newc import Entry, elf_interpreter, read_archive

from hil.cache.keys import cache_root, sha256_file

EPOCH = 1700000000
LIB_DIRS = ("lib/x86_64-linux-gnu", "lib64")


@pytest.fixture(scope="module")
def entries(initramfs: Path) -> dict[str, Entry]:
    return read_archive(initramfs)


def needed_libs(path: Path) -> list[str]:
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("[")[1].split("]")[0] for line in out.splitlines() if "(NEEDED)" in line]


def regular(entries: dict[str, Entry], name: str) -> Entry:
    assert name in entries, f"{name} missing from the image"
    e = entries[name]
    assert e.kind == stat.S_IFREG, f"{name} is not a regular file"
    return e


def test_last_line_is_cached_image_path(initramfs: Path) -> None:
    assert initramfs.parent.parent == cache_root() / "rootfs"
    assert initramfs.name == "initramfs.cpio.gz"
    assert initramfs.read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    "name",
    ["bin/busybox", "usr/sbin/cbmem", "usr/bin/wpp-counter", "usr/bin/wpp-synth"],
)
def test_static_binaries(entries: dict[str, Entry], name: str) -> None:
    e = regular(entries, name)
    assert e.perms & 0o111, f"{name} is not executable"
    assert elf_interpreter(e.data) is None, f"{name} is dynamically linked"


def test_every_kernel_tool_is_installed(entries: dict[str, Entry]) -> None:
    listed = subprocess.run(
        ["make", "-s", "-C", str(REPO / "kernel" / "tools"), "list"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert listed, "kernel/tools builds nothing"
    for path in listed:
        e = regular(entries, f"usr/bin/{Path(path).name}")
        assert elf_interpreter(e.data) is None


def test_busybox_applets_and_shell(entries: dict[str, Entry]) -> None:
    applets = ("bin/sh", "bin/mount", "sbin/ip", "bin/netstat", "bin/cttyhack", "usr/bin/setsid")
    for applet in applets:
        e = entries.get(applet)
        assert e is not None and e.kind == stat.S_IFLNK, f"{applet} is not a link"
        assert e.data == b"/bin/busybox"


@pytest.mark.parametrize(
    "name",
    [
        "usr/sbin/dropbear",
        "usr/lib/sftp-server",
        "usr/bin/redis-server",
        "usr/bin/redis-cli",
        "usr/bin/redis-benchmark",
        "usr/lib/p7zip/7z",
        "usr/lib/p7zip/7z.so",
    ],
)
def test_dynamic_programs_have_loader_and_libraries(
    entries: dict[str, Entry], name: str, tmp_path: Path
) -> None:
    e = regular(entries, name)
    if not name.endswith(".so"):
        interp = elf_interpreter(e.data)
        assert interp == "/lib64/ld-linux-x86-64.so.2"
        regular(entries, interp.lstrip("/"))
    copy = tmp_path / Path(name).name
    copy.write_bytes(e.data)
    libs = needed_libs(copy)
    assert libs, f"{name}: readelf found no NEEDED entries"
    for lib in libs:
        assert any(f"{d}/{lib}" in entries for d in LIB_DIRS), f"{name} needs {lib}: not in image"


def test_fixed_private_map_file(entries: dict[str, Entry]) -> None:
    e = regular(entries, "usr/share/wpp/private-map.bin")
    assert len(e.data) == 64 * 1024 and len(set(e.data)) > 200, "not PRNG content"


def test_seven_zip_wrapper(entries: dict[str, Entry]) -> None:
    e = regular(entries, "usr/bin/7z")
    assert e.data.startswith(b"#!/bin/sh") and b"/usr/lib/p7zip/7z" in e.data


def test_ssh_login_material(entries: dict[str, Entry]) -> None:
    keys = cache_root() / "keys"
    assert entries["root"].perms == 0o700
    assert entries["root/.ssh"].perms == 0o700
    auth = regular(entries, "root/.ssh/authorized_keys")
    assert auth.perms == 0o600
    assert auth.data == (keys / "twin_ed25519.pub").read_bytes()
    assert auth.data.startswith(b"ssh-ed25519 ")
    host = regular(entries, "etc/dropbear/dropbear_ed25519_host_key")
    assert host.perms == 0o600
    assert host.data == (keys / "twin_host_ed25519").read_bytes()
    assert (keys / "twin_ed25519").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (keys / "twin_ed25519").stat().st_mode & 0o077 == 0
    passwd = regular(entries, "etc/passwd").data.decode()
    assert passwd.startswith("root:x:0:0:root:/root:/bin/sh")


def test_init_console_and_ownership(entries: dict[str, Entry]) -> None:
    init = regular(entries, "init")
    assert init.perms == 0o755 and init.data.startswith(b"#!/bin/sh")
    assert b"wpp-guest: ready" in init.data
    console = entries["dev/console"]
    assert console.kind == stat.S_IFCHR and (console.rdevmajor, console.rdevminor) == (5, 1)
    assert entries["tmp"].perms == 0o1777
    bad_owner = [n for n, e in entries.items() if (e.uid, e.gid) != (0, 0)]
    assert not bad_owner
    bad_mtime = [n for n, e in entries.items() if e.mtime != EPOCH]
    assert not bad_mtime


def test_archive_order_is_sorted(initramfs: Path) -> None:
    names = list(read_archive(initramfs))
    assert names == sorted(names)


def test_same_inputs_same_bytes(initramfs: Path, tmp_path: Path) -> None:
    fresh = run_build("--output", str(tmp_path / "again.cpio.gz"))
    assert fresh == tmp_path / "again.cpio.gz"
    assert sha256_file(fresh) == sha256_file(initramfs)


def test_warm_build_hits_cache(initramfs: Path) -> None:
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip().splitlines()[-1] == str(initramfs)
    assert "cached" in proc.stderr


def test_hash_changes_with_compression() -> None:
    def key(*args: str) -> str:
        return subprocess.run(
            [str(BUILD), "--hash", *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert key() == key("--compress", "gzip")
    assert key() != key("--compress", "xz")


def test_bad_argument_is_one_clear_error() -> None:
    proc = subprocess.run(
        [str(BUILD), "--compress", "lz5"], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "error: unknown compression 'lz5'" in proc.stderr
    assert "hint:" in proc.stderr
