"""A private twin for one run: the pytest plugin, ``hil bench`` and ``hil demo`` all use it.

One state-directory rule for all three: a fresh temporary directory
(``$TMPDIR/hil-<purpose>-twin-*``), free loopback ports, stopped and deleted when the
block ends (and stopped when the process exits, should the block never end). A private
twin is nobody else's, so no lease is taken. The user's own twin (``hil emulate up``)
keeps its fixed ports and its state under the cache, and is never touched here.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hil.core.inventory import Board
from hil.core.target import Target
from hil.emulated import twin


@contextlib.contextmanager
def private_twin(board: Board, rom: Path, purpose: str, *,
                 flash_through_flashrom: bool = False) -> Iterator[Target]:
    """Start a private twin of `board` with `rom`, yield its (not yet booted) `Target`.

    `flash_through_flashrom`: write the ROM through the twin's flashrom, as the lab flashes
    its board, so the ROM is also recorded as known good once it boots (the suite's
    recovery tests rely on that); a failure then marks the target broken, with the cause,
    instead of raising, so every test reports it. Otherwise the ROM is copied into the chip
    file before the first power-on, which is faster.
    """
    with tempfile.TemporaryDirectory(prefix=f"hil-{purpose}-twin-") as state:
        running = twin.up(board, state=Path(state), use_free_ports=True,
                          rom=None if flash_through_flashrom else rom, stop_at_exit=True)
        target = Target(running)
        try:
            if flash_through_flashrom:
                try:
                    target.flash_write(rom)
                except Exception as e:
                    target.mark_broken(f"flashing the twin's ROM failed: {e}")
            yield target
        finally:
            target.close()
            twin.down(running)
