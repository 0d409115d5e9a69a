"""`hil deploy kernel` on the twin: the kernel is the ROM payload, the previous ROM is the
previous boot entry. A working kernel is deployed and runs; a broken one (its compressed
image damaged, so it cannot start) is rolled back and the previous kernel runs again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hil.build import twin as artifacts
from hil.core.target import Target
from hil.lab.deploy import UNAME, bzimage_version, deploy_twin, uname_of

pytestmark = pytest.mark.twin


def _rom_for(kernel: Path) -> Path:
    return artifacts.firmware_rom(kernel, artifacts.guest_initramfs())


def test_deploy_a_kernel_then_roll_back_a_broken_one(target: Target, tmp_path: Path) -> None:
    if not target.is_emulated:
        pytest.skip("the board's deploy is covered by tests/unit/test_deploy.py's commands")
    kernel = artifacts.kernel_image()
    want = uname_of(bzimage_version(kernel))
    target.ensure_booted()

    ok = deploy_twin(target, kernel, rom_for=_rom_for, timeout=240, work=tmp_path)
    assert ok.deployed and not ok.rolled_back, ok.steps
    assert " ".join(target.shell.run(UNAME, timeout=30).stdout.split()) == want
    good_chip = hashlib.sha256(target.twin.chip.read_bytes()).hexdigest()

    broken = tmp_path / "bzImage.broken"
    data = bytearray(kernel.read_bytes())
    mid = len(data) // 2  # inside the compressed kernel, past the setup code
    data[mid:mid + 65536] = bytes(65536)
    broken.write_bytes(bytes(data))
    assert bzimage_version(broken) == bzimage_version(kernel)  # same header, cannot boot
    bad = deploy_twin(target, broken, rom_for=_rom_for, timeout=60, work=tmp_path / "2")
    assert not bad.deployed and bad.rolled_back, bad.steps
    assert bad.cause
    assert bad.running == want
    assert hashlib.sha256(target.twin.chip.read_bytes()).hexdigest() == good_chip
