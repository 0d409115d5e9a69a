"""The PiKVM's virtual USB drive reaches the twin's guest as a USB disk.

Through the kvmd API only: an uploaded FAT image, connected, appears in the guest as a
USB mass-storage device whose files can be read; disconnected, it is gone. Pressing
MSI's Flash BIOS button (a GPIO channel) with a drive holding MSI.ROM flashes the chip
from it while the board is off, the route `hil recover` takes when the SPI clip cannot.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from hil.core.errors import HilError
from hil.core.target import Target
from hil.drivers.pikvm import PiKvmError

pytestmark = pytest.mark.twin


def fat_image(path: Path, files: dict[str, bytes]) -> Path:
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "HILTEST", str(path)], check=True,
                   capture_output=True)
    for name, data in files.items():
        src = path.parent / name
        src.write_bytes(data)
        subprocess.run(["mcopy", "-i", str(path), str(src), f"::{name}"], check=True)
    return path


def _usb_disks(target: Target) -> list[str]:
    out = target.shell.run("for d in /sys/block/sd*; do [ -e \"$d\" ] && "
                           "readlink -f \"$d\"; done; true", timeout=30).stdout
    return [line.rsplit("/", 1)[-1] for line in out.split() if "/usb" in line]


def _wait_for(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.5)
    return bool(cond())


def test_connected_image_is_a_usb_disk_in_the_guest(target: Target, tmp_path: Path) -> None:
    if not target.is_emulated:
        pytest.skip("on the board the drive is the PiKVM's own USB gadget")
    target.ensure_booted()
    payload = os.urandom(100_000)
    img = fat_image(tmp_path / "drive.img", {"HELLO.BIN": payload})
    pikvm = target.pikvm
    name = f"hil-usb-{os.getpid()}.img"
    try:
        pikvm.msd_upload(img, name)
        pikvm.msd_set_params(image=name, cdrom=False, rw=False)
        pikvm.msd_connect()
        assert _wait_for(lambda: bool(_usb_disks(target)), 30), "no USB disk in the guest"
        disk = _usb_disks(target)[0]
        sh = target.shell
        sh.run(f"mkdir -p /mnt/usb && mount -t vfat -o ro /dev/{disk} /mnt/usb", timeout=30)
        got = sh.run("sha256sum /mnt/usb/HELLO.BIN", timeout=30).stdout.split()[0]
        assert got == hashlib.sha256(payload).hexdigest()
        sh.run("umount /mnt/usb", timeout=30)
        pikvm.msd_disconnect()
        assert _wait_for(lambda: not _usb_disks(target), 30), "the disk stayed after unplug"
    finally:
        with contextlib.suppress(PiKvmError, HilError):
            pikvm.msd_disconnect()
        with contextlib.suppress(PiKvmError, HilError):
            pikvm.msd_remove(name)
