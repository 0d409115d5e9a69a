"""The system suite's only door to twin-only mechanics (host files of the emulated board).

Every system test talks to the board through `hil.core.target.Target` and SSH, so it runs on
the twin and on the lab board alike. A few checks additionally look at what only the twin
exposes on the host: the persistent-device file (to read a snapshot offline or damage
it), the flash chip file, and the debugcon log (the SMM handler's output while it runs;
on the board that log lives in RAM and is lost with the power cut). They all get those
paths here, so that on a real board the reason shows up instead of an AttributeError or
a silently passing test:

* `require_twin(target, why)`: the whole test needs the twin -> skipped on a board with
  a ``twin_only: ...`` reason (like ``board_only`` the other way round);
* `optional_twin(target, why)`: only an extra check needs it -> None on a board and a
  `TwinOnlyCheckSkipped` warning naming the check, shown in pytest's warnings summary;
* `twin_shaped(target, twin_rom, name, fits, ...)`: a module that needs a machine of
  another shape (CPUs, RAM) gets the session's target when it fits, else a private twin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil.core.errors import HilError


class TwinOnlyCheckSkipped(UserWarning):
    """A twin-only part of a test was not run because the target is a real board."""


@dataclass(frozen=True)
class TwinFiles:
    """Host-side files of the twin under test."""

    pdev: Path  # persistent device (ivshmem BAR2 contents)
    chip: Path  # flash chip (flashrom dummy programmer)
    debugcon: Path  # SMM debug output (port 0xe9)


def _reason(target: Any, why: str) -> str:
    return (f"twin_only: {why} needs the emulated board's host files (persistent device, "
            f"chip, debugcon); target '{target.board.name}' is a real board")


def twin_files(target: Any, why: str) -> TwinFiles:
    """The twin's files; raises `HilError` naming `why` on a real board."""
    if not target.is_emulated:
        raise HilError(_reason(target, why), "run this check with --target=emulated")
    return TwinFiles(Path(target.twin.pdev), Path(target.twin.chip),
                     Path(target.twin.debugcon_log))


def require_twin(target: Any, why: str) -> TwinFiles:
    """The twin's files, or skip the test with the reason on a real board."""
    if not target.is_emulated:
        pytest.skip(_reason(target, why))
    return twin_files(target, why)


def optional_twin(target: Any, why: str) -> TwinFiles | None:
    """The twin's files, or None (with a visible warning) on a real board."""
    if not target.is_emulated:
        warnings.warn(TwinOnlyCheckSkipped(_reason(target, why)), stacklevel=2)
        return None
    return twin_files(target, why)


def inspect_cli(image: Path, *, no_pages: bool = False) -> tuple[int, dict[str, Any]]:
    """Run ``hil snapshot inspect --json IMAGE`` as a user would; (exit code, report)."""
    exe = Path(sys.executable).parent / "hil"  # the venv's console script
    cmd = [str(exe) if exe.exists() else "hil", "snapshot", "inspect", "--json", str(image)]
    if no_pages:
        cmd.append("--no-pages")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), f"hil snapshot inspect failed: {proc.stderr.strip()}"
    return proc.returncode, json.loads(proc.stdout)


@contextlib.contextmanager
def twin_shaped(target: Any, twin_rom: Path, name: str, fits: bool,
                **emulated: Any) -> Iterator[Any]:
    """The session's target when it `fits` (or is a board: its shape is what it is), else a
    private twin whose ``emulated:`` settings differ by `emulated` (e.g. ``smp=2``), booted.

    Why private: the session's twin keeps its shape for every other module; the few that
    need one CPU, two CPUs or RAM above 4 GiB boot their own and stop it afterwards.
    """
    if fits or not target.is_emulated:
        yield target
        return
    from hil.emulated.private import private_twin

    board = target.board
    board = board.replace(emulated=dataclasses.replace(board.emulated, **emulated))
    with private_twin(board, twin_rom, name) as twin:
        twin.boot(300)
        yield twin


def assert_complete_snapshot(image: Path, min_pages: int) -> dict[str, Any]:
    """The persistent device holds a complete snapshot, as ``hil snapshot inspect`` judges
    it (every page's checksum verified), of at least `min_pages` pages; its report."""
    rc, report = inspect_cli(image)
    assert rc == 0 and report["verdict"] == "complete", report
    assert report["page_crc_ok"] is True and report["marker_state"] == "complete", report
    assert report["page_count"] >= min_pages, report
    return report


def sha256_ranges(path: Path, skip: Sequence[tuple[int, int]] = ()) -> str:
    """sha256 of a file with the byte ranges `skip` ((offset, length), sorted) left out."""
    h = hashlib.sha256()
    pos = 0
    with path.open("rb") as f:
        for off, length in [*sorted(skip), (path.stat().st_size, 0)]:
            f.seek(pos)
            left = off - pos
            while left > 0:
                chunk = f.read(min(left, 1 << 22))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            pos = max(pos, off + length)
    return h.hexdigest()
