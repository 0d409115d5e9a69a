"""`private_twin`, the one way the plugin, ``hil bench`` and ``hil demo`` start a twin.

No boot is needed: the state-directory rule, the ROM in the chip, the ports and the
clean-up are visible with the daemon alone, so any small file serves as the ROM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.core.errors import HilError
from hil.core.inventory import load
from hil.core.target import Target
from hil.emulated import twin
from hil.emulated.private import private_twin


def test_private_twin_state_is_fresh_and_gone_afterwards(tmp_path: Path) -> None:
    board = load().board("emulated")
    chip_size = board.flash.chip_size
    rom = tmp_path / "fake.rom"
    rom.write_bytes(bytes([0x5A]) * chip_size)
    with private_twin(board, rom, "check") as target:
        state = target.twin.path
        assert state.name.startswith("hil-check-twin-")
        assert target.twin.chip.read_bytes() == rom.read_bytes()
        assert twin.status(target.board, state=state)["running"]
        # free ports, never the inventory's fixed ones (a user's twin may hold those)
        assert target.board.pikvm.url != board.pikvm.url
    assert not state.exists()
    assert not twin.status(board, state=state)["running"]


def test_a_real_board_has_no_twin_handle() -> None:
    board = next(b for b in load().boards.values() if b.emulated is None)
    with pytest.raises(HilError, match="real board"):
        _ = Target(board).twin
