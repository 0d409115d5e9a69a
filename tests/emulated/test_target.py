"""The bench's parts end to end against a booted target (the twin by default).

Everything goes through the real interfaces a lab board has: the kvmd API for power,
screen and keyboard, flashrom for the chip, the serial port, SSH and ``cbmem``. The
session's twin is reused; tests that power-cycle it leave it for the plugin to boot
again before the next test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from hil.core.errors import HilError, TimeoutExpired
from hil.core.target import BANNER, Target
from hil.core.timeout import wait_for
from hil.drivers.pikvm import PiKvmError

pytestmark = pytest.mark.twin

PDEV_ID = ("0x1af4", "0x1110")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_boot_shows_banner_then_ssh(target: Target) -> None:
    target.force_off()
    assert not target.is_on()
    target.power_on()
    banner_s = target.wait_banner(timeout=30)
    ssh_s = target.wait_ssh(timeout=180)
    assert banner_s < 30 and ssh_s > 0
    out = target.shell.run("uname -sr; id -u").stdout.split()
    assert out[0] == "Linux" and out[-1] == "0"
    if target.is_emulated:
        assert BANNER.search(target.twin.serial_log.read_text(errors="replace"))
    # boot() from off measures both milestones from the power press
    target.force_off()
    t = target.boot()
    assert t.banner_s is not None and t.ssh_s is not None
    assert 0 < t.banner_s < t.ssh_s <= t.total_s + 1


def test_cbmem_console_has_the_firmware_log(target: Target) -> None:
    log = target.cbmem.read()
    assert log.boots, "cbmem -c shows no coreboot boot"
    last = log.last_boot
    assert last is not None and re.search(r"coreboot-\S+ .* bootblock starting", last.text)
    assert "Jumping to boot code" in last.text  # the payload (our kernel) was started


def test_snapshot_is_a_decodable_screen(target: Target, tmp_path: Path) -> None:
    path = target.pikvm.snapshot(tmp_path / "screen.jpg")
    with Image.open(path) as img:
        assert img.format == "JPEG"
        assert img.width >= 320 and img.height >= 200


def _keyboard_irqs(target: Target) -> int:
    """Interrupts the guest's i8042 keyboard port has taken (IRQ 1)."""
    line = target.shell.run("grep -E '^ *1:' /proc/interrupts").stdout
    return sum(int(x) for x in line.split()[1:] if x.isdigit())


def test_keyboard_reaches_the_guest(target: Target) -> None:
    if not target.is_emulated:
        pytest.skip("the lab board's keyboard is checked on its screen")
    before = _keyboard_irqs(target)
    target.pikvm.send_key("Enter")
    target.pikvm.hid_print("echo hil\n")
    target.pikvm.send_shortcut("ShiftLeft", "KeyA")
    # every press and release is a scancode interrupt on the guest's keyboard controller;
    # kvmd answers when the keys are sent, and the last release comes after its hold time
    # (read at once, the count missed it once the server answered without Nagle's delay)
    want = 2 * (1 + 9 + 2)
    got = wait_for(lambda: (n := _keyboard_irqs(target) - before) >= want and n, 10,
                   f"{want} keyboard interrupts")
    assert got >= want


def test_flash_refused_while_on(target: Target, twin_rom: Path) -> None:
    if not target.board.flash.power_off_for_write:
        pytest.skip("this board is flashed while running")
    before = sha(target.twin.chip) if target.is_emulated else None
    with pytest.raises(HilError, match=r"refusing to flash .* while it is powered on"):
        target.flash_write(twin_rom)
    if before is not None:
        assert sha(target.twin.chip) == before
    assert target.shell.is_reachable()


def test_garbled_rom_bricks_and_good_rom_recovers(
    target: Target, twin_rom: Path, tmp_path: Path
) -> None:
    if not target.is_emulated:
        pytest.skip("bricking the lab board on purpose needs a person at the bench")
    data = bytearray(twin_rom.read_bytes())
    rng = random.Random(1234)
    top = len(data) - 256 * 1024  # the bootblock and reset vector live at the top
    data[top:] = bytes(rng.getrandbits(8) for _ in range(len(data) - top))
    bad = tmp_path / "garbled.rom"
    bad.write_bytes(bytes(data))

    target.force_off()
    target.flash_write(bad)
    assert sha(target.twin.chip) == sha(bad)
    since = target.console.mark()
    target.power_on()
    assert target.is_on()  # the power LED comes on: the board is not dead, just bricked
    with pytest.raises(TimeoutExpired):
        target.console.expect(BANNER, timeout=10, since=since)
    assert not target.shell.is_reachable()

    target.force_off()
    target.flash_write(twin_rom)
    assert sha(target.twin.chip) == sha(twin_rom)
    t = target.boot()
    assert t.banner_s is not None


def _pdev_bar2(target: Target) -> int:
    out = target.shell.run(
        "for d in /sys/bus/pci/devices/*; do "
        'echo "$(cat $d/vendor) $(cat $d/device) $(sed -n 3p $d/resource)"; done'
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if tuple(parts[:2]) == PDEV_ID:
            return int(parts[2], 16)
    raise AssertionError(f"no persistent device {PDEV_ID} on the PCI bus:\n{out}")


def test_power_cut_keeps_the_persistent_device(target: Target) -> None:
    if not target.is_emulated:
        pytest.skip("the lab board's persistent device is checked by the WPP tests")
    bar = _pdev_bar2(target)
    assert 0 < bar < 1 << 32, f"BAR2 at {bar:#x} is not below 4 GiB"
    last = target.board.emulated.pdev_size - 4 if target.board.emulated else 0x1FFFFFFC
    pattern = {0: 0xC0FFEE01, 0x1000: 0xDEADBEEF, last: int.from_bytes(os.urandom(4), "little")}
    cmds = "; ".join(f"devmem {bar + off:#x} 32 {val:#x}" for off, val in pattern.items())
    target.shell.run(cmds)

    target.power_cut()  # SIGKILL: RAM is gone, the device file stays
    assert not target.is_on()
    pdev = target.twin.pdev.read_bytes()
    for off, val in pattern.items():
        assert int.from_bytes(pdev[off:off + 4], "little") == val, f"offset {off:#x}"
    # the host side writes too, like a device keeping data across boots
    with open(target.twin.pdev, "r+b") as f:
        f.seek(0x2000)
        f.write((0x12345678).to_bytes(4, "little"))

    target.boot()
    bar = _pdev_bar2(target)
    for off, val in {**pattern, 0x2000: 0x12345678}.items():
        got = int(target.shell.run(f"devmem {bar + off:#x} 32").stdout.strip(), 16)
        assert got == val, f"offset {off:#x}: {got:#x} != {val:#x}"


def test_msd_stores_images(target: Target, tmp_path: Path) -> None:
    img = tmp_path / "recovery.img"
    img.write_bytes(os.urandom(64 * 1024))
    name = f"hil-{os.getpid()}.img"
    try:
        target.pikvm.msd_upload(img, name)
        state = target.pikvm.msd_state()
        assert state.images[name].size == 64 * 1024
    finally:
        with contextlib.suppress(PiKvmError):
            target.pikvm.msd_remove(name)
    assert name not in target.pikvm.msd_state().images


def test_capture_collects_artifacts(target: Target, tmp_path: Path) -> None:
    got = target.capture("capture-test", dest=tmp_path)
    for label in ("screenshot", "cbmem", "dmesg"):
        assert label in got and got[label].stat().st_size > 0, label
    assert "coreboot" in got["cbmem"].read_text()
    if target.is_emulated:
        assert BANNER.search(got["serial"].read_text(errors="replace"))
        assert "debugcon" in got


def test_second_twin_does_not_interfere(target: Target, twin_rom: Path, tmp_path: Path) -> None:
    if not target.is_emulated:
        pytest.skip("needs the twin")
    from hil.emulated import twin

    other = twin.up(target.board, state=tmp_path / "other", use_free_ports=True, rom=twin_rom,
                    stop_at_exit=True)
    second = Target(other)
    try:
        mark = target.console.mark()
        t = second.boot()
        assert t.ssh_s is not None
        assert second.twin.pdev != target.twin.pdev
        second.shell.run("echo second > /tmp/who")
        second.power_cut(0.2)
        assert not second.is_on()
        assert target.is_on() and target.shell.is_reachable()
        assert target.shell.run("cat /tmp/who 2>/dev/null || echo none").stdout.strip() == "none"
        # the first twin's console saw nothing of the second's boot
        assert not BANNER.search(target.console.text(mark))
    finally:
        second.close()
        twin.down(other)
