"""`hil cache prune` never deletes a running twin's state: checked with a real twin daemon.

The twin runs with an erased chip (no ROM needed, QEMU not started): the daemon alone
makes it a running twin, as `hil emulate up --off` would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.cache.prune import execute, plan
from hil.cache.usage import CurrentKeys, scan
from hil.core.inventory import load
from hil.emulated import twin


def test_running_twin_survives_prune_and_a_stopped_one_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("WPP_HIL_CACHE", str(root))
    board = load().board("emulated")
    state = root / "twins" / "emulated"
    tb = twin.up(board, state=state, use_free_ports=True, stop_at_exit=True)
    try:
        twins = scan(current=CurrentKeys()).entries["twins"]
        assert [(e.name, e.in_use) for e in twins] == [("emulated", "running twin")]
        assert execute(plan(scan(current=CurrentKeys()), keep=0, recent_s=0)) == []
        assert (state / "state.json").is_file()
    finally:
        assert twin.down(tb)
    gone = execute(plan(scan(current=CurrentKeys()), keep=0, recent_s=0))
    assert [e.name for e in gone] == ["emulated"]
    assert not state.exists()
