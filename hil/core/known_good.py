"""The known-good ROM store of a board: what it booted last, and what was flashed since.

`Target.flash_write` records every ROM it writes here and `hil.lab.recovery` promotes it
once the board boots, then restores from it. It lives below both so that the generic
`Target` does not depend on the lab's recovery procedure.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from hil.cache.keys import cache_root, sha256_file
from hil.core.inventory import Board


class KnownGood:
    """The last ROM a board booted to its OS, and the one written since (pending)."""

    def __init__(self, board: Board) -> None:
        if board.emulated is not None:  # every twin is its own board
            self.root = Path(board.emulated.state_dir) / "known-good"
        else:
            self.root = cache_root() / "known-good" / board.name

    @property
    def good(self) -> Path:
        return self.root / "good.rom"

    @property
    def pending(self) -> Path:
        return self.root / "pending.rom"

    def rom(self) -> Path | None:
        return self.good if self.good.is_file() else None

    def record_flashed(self, image: Path) -> None:
        """A ROM was written: it becomes known good once the board boots it."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.pending.with_suffix(".tmp")
        shutil.copyfile(image, tmp)
        tmp.replace(self.pending)

    def promote(self) -> bool:
        """The board booted to its OS: what was written last is known good now."""
        if not self.pending.is_file():
            return False
        meta = {"sha256": sha256_file(self.pending), "booted_at": time.time()}
        self.pending.replace(self.good)
        (self.root / "good.json").write_text(json.dumps(meta) + "\n")
        return True

    def set_good(self, image: Path) -> None:
        """Declare `image` known good (e.g. a ROM the lab has booted before)."""
        self.record_flashed(image)
        self.promote()
