"""``hil demo``: which board it runs on (never a lab board) and its ``--json`` output.

The twin itself is not booted here (tests/system and `make demo` do that): `run_demo` is
replaced by a stand-in that narrates on stdout as the real one does, so these tests check
what the CLI does with the board choice, the narration and the result.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hil.cli.main import main
from hil.core.inventory import Board
from hil.wpp import demo as narrated
from hil.wpp.experiment import CycleReport

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Record each demo run (board, mode, cycles) instead of booting a twin."""
    calls: list[tuple[str, str, int]] = []

    def fake_run_demo(board: Board, mode: str = "eager", cycles: int = 1) -> list[CycleReport]:
        calls.append((board.name, mode, cycles))
        narrated.say("starting the emulated board")  # the real narration prints on stdout
        subprocess.run(["echo", "a build step's output"], check=True)  # as build scripts do
        return [CycleReport(cycle=i, mode=mode, checks={"continues": True})
                for i in range(1, cycles + 1)]

    monkeypatch.setattr(narrated, "run_demo", fake_run_demo)
    return calls


def _inventory(tmp_path: Path, mutate: Any) -> Path:
    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    mutate(data)
    p = tmp_path / "inv.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_demo_refuses_a_lab_board_before_starting(runs, capsys) -> None:
    assert main(["demo", "--board", "msi-z690"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("error: hil demo runs on an emulated board only; 'msi-z690' is a lab "
                      "board (no 'emulated:' section)")
    assert err[1] == "hint: use --board emulated, or 'hil cycle --board msi-z690' on the lab board"
    assert runs == []  # nothing was started


def test_demo_unknown_board_is_a_config_error(runs, capsys) -> None:
    assert main(["demo", "--board", "nope"]) == 2
    assert "no board named 'nope'" in capsys.readouterr().err
    assert runs == []


def test_demo_runs_on_the_named_twin_not_a_hard_coded_one(runs, tmp_path, capsys) -> None:
    """A twin under another name (and a lab board as the default) is found by its section."""
    def rename(d: dict) -> None:
        d["boards"]["twin-b"] = d["boards"].pop("emulated")
        d["default_board"] = "msi-z690"

    inv = str(_inventory(tmp_path, rename))
    assert main(["--inventory", inv, "demo", "--board", "twin-b", "--count", "2"]) == 0
    assert main(["--inventory", inv, "demo"]) == 0  # default: the first emulated board
    assert runs == [("twin-b", "eager", 2), ("twin-b", "eager", 1)]


def test_demo_without_any_twin_says_how_to_add_one(runs, tmp_path, capsys) -> None:
    inv = str(_inventory(tmp_path, lambda d: (d["boards"].pop("emulated"),
                                              d.update(default_board="msi-z690"))))
    assert main(["--inventory", inv, "demo"]) == 2
    err = capsys.readouterr().err
    assert "no emulated board to run the demo on" in err and "'emulated:' section" in err
    assert runs == []


def test_demo_json_is_the_result_alone_with_progress_on_stderr(runs, capfd) -> None:
    """Child processes' output (build scripts) must not reach stdout either: capfd sees
    the file descriptors, not only Python's sys.stdout."""
    assert main(["demo", "--json", "--mode", "lazy", "--count", "2"]) == 0
    out, err = capfd.readouterr()
    result = json.loads(out)  # stdout is exactly one JSON document
    assert result["board"] == "emulated" and result["mode"] == "lazy" and result["ok"] is True
    assert [c["cycle"] for c in result["cycles"]] == [1, 2]
    assert result["cycles"][0]["checks"] == {"continues": True}
    assert "==> starting the emulated board" in err and "a build step's output" in err


def test_demo_json_failure_exits_1(monkeypatch, capsys) -> None:
    monkeypatch.setattr(narrated, "run_demo", lambda board, mode, cycles: [
        CycleReport(cycle=1, mode=mode, checks={"continues": False}, error="no answer")])
    assert main(["demo", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["cycles"][0]["error"] == "no answer"


def test_demo_text_output_is_unchanged(runs, capfd) -> None:
    assert main(["demo"]) == 0
    out, err = capfd.readouterr()
    assert "==> starting the emulated board" in out
    assert "the process survived the power cut" in err
