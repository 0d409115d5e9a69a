"""A ROM of the wrong size is refused before anything touches the chip.

Through the same `Target.flash_write` every flash goes through (real flashrom: the
dummy programmer on the twin's chip file, the SPI programmer on the lab board): the chip
is probed for its size and a smaller or larger image is refused with one line naming
both sizes, before the backup read, so the backup directory stays empty; on the twin
the chip file is byte-identical afterwards. The board is powered off for this (flashing
happens in G3) and not booted between the two cases; the next test boots it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twin_only import optional_twin

from hil.cache.keys import sha256_file
from hil.core.errors import HilError


@pytest.mark.hil_no_autoboot  # it powers the board off anyway: no boot between the cases
@pytest.mark.parametrize("delta", ["half", "plus_4k"])
def test_wrong_size_rom_refused_before_flashing(target: Any, tmp_path: Path, delta: str) -> None:
    chip = target.board.flash.chip_size
    assert chip, "the inventory names the chip size"
    size = chip // 2 if delta == "half" else chip + 4096
    image = tmp_path / f"wrong-{delta}.rom"
    image.write_bytes(bytes(range(256)) * (size // 256))
    twin = optional_twin(target, "hashing the chip file around the refused write")
    before = sha256_file(twin.chip) if twin else None
    backups = tmp_path / "backups"

    target.force_off()
    with pytest.raises(HilError) as err:
        target.flash_write(image, backup_dir=backups)
    msg = str(err.value)
    assert f"image {image.name} has {size} bytes but the chip has {chip}" in msg, msg
    assert "nothing was written" in msg
    assert not list(backups.glob("backup-*")), "the chip was read (backed up) anyway"
    if twin is not None:
        assert sha256_file(twin.chip) == before, "the chip file changed"
