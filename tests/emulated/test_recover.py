"""`hil recover` on the twin: a garbled ROM is detected and the known-good one restored.

The twin plays the SPI route for real: the chip file behind flashrom's dummy programmer,
written with mains cut. The ROM the session booted is known good (the plugin flashed it,
then the twin booted it); a garbled one is flashed, and recovery must notice the silence,
keep evidence, restore, and boot to the OS.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from hil.core.known_good import KnownGood
from hil.core.target import Target
from hil.lab.recovery import recover

pytestmark = pytest.mark.twin


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_healthy_board_needs_no_recovery(target: Target, twin_rom: Path) -> None:
    target.ensure_booted()
    result = recover(target)
    assert result.healthy_at_start and result.recovered and not result.attempts
    assert sha(KnownGood(target.board).rom()) == sha(twin_rom)  # type: ignore[arg-type]


def test_bricked_twin_is_detected_and_recovered_by_spi(target: Target, twin_rom: Path,
                                                       tmp_path: Path) -> None:
    if not target.is_emulated:
        pytest.skip("bricking the lab board on purpose needs a person at the bench")
    target.ensure_booted()  # boots the session ROM: it is known good
    data = bytearray(twin_rom.read_bytes())
    rng = random.Random(99)
    top = len(data) - 256 * 1024  # bootblock and reset vector
    data[top:] = bytes(rng.getrandbits(8) for _ in range(len(data) - top))
    bad = tmp_path / "garbled.rom"
    bad.write_bytes(bytes(data))
    target.force_off()
    target.flash_write(bad)
    assert sha(target.twin.chip) == sha(bad)

    result = recover(target, evidence_dir=tmp_path / "evidence")
    assert not result.healthy_at_start
    assert "no firmware banner" in result.cause, result.cause
    assert result.evidence, "the PiKVM screen and logs are kept as evidence"
    assert any(Path(p).suffix in (".jpg", ".jpeg") for p in result.evidence.values())
    assert [a.route for a in result.attempts] == ["spi"]
    assert result.attempts[0].ok, result.attempts[0].detail
    assert result.recovered and sha(target.twin.chip) == sha(twin_rom)
    assert target.shell.is_reachable()
    # the garbled ROM never became known good
    assert sha(KnownGood(target.board).rom()) == sha(twin_rom)  # type: ignore[arg-type]


def test_bricked_twin_is_recovered_by_the_flash_bios_button(target: Target, twin_rom: Path,
                                                            tmp_path: Path) -> None:
    """The USB route for real: MSI.ROM on the virtual drive, the button, the board boots."""
    if not target.is_emulated:
        pytest.skip("bricking the lab board on purpose needs a person at the bench")
    target.ensure_booted()
    bad = tmp_path / "garbled.rom"
    data = bytearray(twin_rom.read_bytes())
    data[-65536:] = bytes(65536)  # no reset vector: nothing runs
    bad.write_bytes(bytes(data))
    target.force_off()
    target.flash_write(bad)
    result = recover(target, routes=("usb",), evidence_dir=tmp_path / "evidence")
    assert not result.healthy_at_start and "no firmware banner" in result.cause
    assert [a.route for a in result.attempts] == ["usb"], result.attempts
    assert result.attempts[0].ok, result.attempts[0].detail
    assert "MSI.ROM" in result.attempts[0].detail
    assert sha(target.twin.chip) == sha(twin_rom)
    assert not target.pikvm.msd_state().connected  # the drive was taken away again
