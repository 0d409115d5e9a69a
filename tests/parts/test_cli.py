"""The `hil` CLI end to end against real local peers, through an inventory like the lab's.

A loopback kvmd server (simulated board behind it) stands in for the PiKVM and a real
flashrom dummy chip for the SPI flash: the commands, the inventory plumbing and the exit
codes are exactly what a lab user runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hil.cli.main import main
from hil.emulated.kvmd.server import KvmdServer
from hil.emulated.kvmd.simulated import SimulatedBoardBackend

REPO = Path(__file__).resolve().parents[2]
CHIP = 1 << 20


@pytest.fixture
def lab(tmp_path, monkeypatch):
    backend = SimulatedBoardBackend(tmp_path / "msd")
    server = KvmdServer(backend, user="admin", password="pw-for-test")
    with server:
        chip = tmp_path / "chip.bin"
        chip.write_bytes(b"\xff" * CHIP)
        raw = yaml.safe_load((REPO / "inventory.yaml").read_text())
        board = raw["boards"]["msi-z690"]
        board["pikvm"].update(url=server.url, password_env="TEST_PIKVM_PW", verify=True)
        board["pikvm"].pop("totp_secret_env")
        board["power_cut"].update(hold_s=0.2, channel="relay")
        board["flash"].update(
            programmer=f"dummy:emulate=VARIABLE_SIZE,size={CHIP},image={chip}",
            runs_on="local", chip_size=CHIP, ifd_region=None)
        raw["default_board"] = "msi-z690"
        inv = tmp_path / "inventory.yaml"
        inv.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("TEST_PIKVM_PW", "pw-for-test")
        monkeypatch.setenv("HIL_RUNS_DIR", str(tmp_path / "runs"))
        yield inv, backend, chip


def hil(inv: Path, *args: str) -> int:
    return main(["--inventory", str(inv), *args])


def test_power_verbs(lab, capsys) -> None:
    inv, _, _ = lab
    assert hil(inv, "power", "status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["power"] == "off"
    assert hil(inv, "power", "on") == 0
    assert "now on" in capsys.readouterr().out
    assert hil(inv, "power", "cut", "--stay") == 0
    assert hil(inv, "power", "status") == 0
    assert "cut" in capsys.readouterr().out
    # power on while mains are cut is refused with a hint, exit 1
    assert hil(inv, "power", "on") == 1
    err = capsys.readouterr().err
    assert "mains power is cut" in err and "hint:" in err
    assert hil(inv, "power", "restore") == 0
    assert "mains restored; now off" in capsys.readouterr().out
    assert hil(inv, "power", "cycle", "--hold", "0.2") == 0
    assert "now on" in capsys.readouterr().out


@pytest.fixture
def reverse_wired_lab(lab, tmp_path):
    """The lab with its relay wired the other way, declared in the inventory."""
    inv, _, _ = lab
    raw = yaml.safe_load(inv.read_text())
    raw["boards"]["msi-z690"]["power_cut"]["cut_state"] = False
    backend = SimulatedBoardBackend(tmp_path / "msd2", mains_cut_state=False)
    with KvmdServer(backend, user="admin", password="pw-for-test") as server:
        raw["boards"]["msi-z690"]["pikvm"]["url"] = server.url
        inv.write_text(yaml.safe_dump(raw))
        yield inv, backend


def test_power_verbs_honour_cut_state(reverse_wired_lab, capsys) -> None:
    inv, backend = reverse_wired_lab
    assert hil(inv, "power", "on") == 0
    assert hil(inv, "power", "status") == 0
    assert capsys.readouterr().out.strip().endswith(": on")  # not "cut" while it runs
    assert hil(inv, "power", "cut", "--hold", "0.1") == 0
    assert backend.mains  # cut and restore leave mains on
    assert "mains were cut, held off and restored; now off" in capsys.readouterr().out
    assert hil(inv, "power", "cut", "--stay") == 0
    out = capsys.readouterr().out
    assert not backend.mains and "stay cut until 'hil power restore --board msi-z690'" in out


def test_power_restore_failure_says_mains_stay_cut(lab, capsys) -> None:
    inv, backend, _ = lab
    assert hil(inv, "power", "cut", "--stay") == 0
    capsys.readouterr()
    backend.gpio_switch = _refuse  # type: ignore[method-assign]  # the relay driver fails
    assert hil(inv, "power", "restore") == 1
    err = capsys.readouterr().err
    assert "mains are left CUT" in err and "hil power restore --board msi-z690" in err
    assert not backend.mains


def _refuse(channel: str, state: bool, wait: bool) -> None:
    from hil.emulated.kvmd.server import KvmdError

    raise KvmdError("relay driver offline", "GpioDriverOfflineError")


def test_missing_secret_is_a_config_error(lab, capsys, monkeypatch) -> None:
    inv, _, _ = lab
    monkeypatch.delenv("TEST_PIKVM_PW")
    assert hil(inv, "power", "status") == 2
    err = capsys.readouterr().err
    assert "TEST_PIKVM_PW is not set" in err and "pw-for-test" not in err


def test_flash_write_read_verify_and_wrong_size(lab, tmp_path, capsys) -> None:
    inv, _, chip = lab
    image = tmp_path / "new.rom"
    image.write_bytes(bytes(range(256)) * (CHIP // 256))
    assert hil(inv, "flash", "write", str(image), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert chip.read_bytes() == image.read_bytes()
    assert Path(result["backup"]).read_bytes() == b"\xff" * CHIP
    assert hil(inv, "flash", "verify", str(image)) == 0
    capsys.readouterr()
    small = tmp_path / "small.rom"
    small.write_bytes(b"\0" * (CHIP // 2))
    assert hil(inv, "flash", "write", str(small)) == 1
    assert "size" in capsys.readouterr().err
    assert chip.read_bytes() == image.read_bytes()  # nothing written
    assert hil(inv, "flash", "verify", str(small)) == 1


def test_flash_write_refused_while_on(lab, tmp_path, capsys) -> None:
    inv, _, chip = lab
    before = chip.read_bytes()
    assert hil(inv, "power", "on") == 0
    image = tmp_path / "new.rom"
    image.write_bytes(b"\x11" * CHIP)
    assert hil(inv, "flash", "write", str(image)) == 1
    assert "while it is powered on" in capsys.readouterr().err
    assert chip.read_bytes() == before


def test_screenshot_is_jpeg(lab, tmp_path, capsys) -> None:
    inv, _, _ = lab
    assert hil(inv, "power", "on") == 0
    out = tmp_path / "shot.jpg"
    assert hil(inv, "screenshot", str(out)) == 0
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"


def test_power_actions_and_screenshot_speak_json(lab, tmp_path, capsys) -> None:
    inv, _, _ = lab
    capsys.readouterr()
    assert hil(inv, "power", "on", "--json") == 0
    on = json.loads(capsys.readouterr().out)
    assert on == {"board": "msi-z690", "action": "on", "done": "powered on", "power": "on"}
    out = tmp_path / "shot.jpg"
    assert hil(inv, "screenshot", "--json", str(out)) == 0
    assert json.loads(capsys.readouterr().out) == {"board": "msi-z690", "file": str(out)}
    assert hil(inv, "power", "cut", "--hold", "0.1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["action"] == "cut"


def test_verbose_shows_log_calls(lab, capsys) -> None:
    import logging

    inv, _, _ = lab
    assert hil(inv, "-v", "power", "status") == 0
    assert logging.getLogger("hil").getEffectiveLevel() == logging.INFO
    assert hil(inv, "-vv", "power", "status") == 0
    assert logging.getLogger("hil").getEffectiveLevel() == logging.DEBUG
    assert hil(inv, "power", "status") == 0
    assert logging.getLogger("hil").getEffectiveLevel() == logging.WARNING


def test_screenshot_of_a_board_without_video(lab, tmp_path, capsys) -> None:
    inv, _, _ = lab  # the board is off: no video
    out = tmp_path / "off.jpg"
    assert hil(inv, "screenshot", str(out)) == 1
    assert "hil screenshot --allow-offline" in capsys.readouterr().err  # the hint's option
    assert hil(inv, "screenshot", "--allow-offline", str(out)) == 0
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"


def _subcommands(parser, path=()):
    """(words, help line, parser) of every subcommand at any depth (``flash write``)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), helps.get(name), sub
                yield from _subcommands(sub, (*path, name))


def test_every_subcommand_has_help(capsys) -> None:
    from hil.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"inventory", "power", "flash", "console", "ssh", "logs", "screenshot",
            "emulate"} <= set(sub.choices)
    found = list(_subcommands(parser))
    assert ("flash", "write") in [words for words, _, _ in found]
    for words, help_line, p in found:
        # a one-line help in the parent's list, and a usage line naming the command
        assert help_line and len(help_line) >= 10, words
        assert p.format_help().startswith(f"usage: hil {' '.join(words)}"), words


def test_emulate_down_speaks_json(tmp_path, monkeypatch, capsys) -> None:
    # a private cache: the user's own twin (under the real cache) is never touched
    monkeypatch.setenv("WPP_HIL_CACHE", str(tmp_path))
    assert main(["emulate", "down", "--board", "emulated", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"board": "emulated", "stopped": False}


def test_a_missing_input_file_exits_2_in_every_verb(lab, tmp_path, capsys) -> None:
    inv, _, chip = lab
    before = chip.read_bytes()
    missing = str(tmp_path / "missing.bin")
    assert hil(inv, "snapshot", "inspect", missing) == 2
    assert hil(inv, "flash", "write", missing) == 2
    assert hil(inv, "flash", "verify", missing) == 2
    assert "missing.bin" in capsys.readouterr().err
    assert chip.read_bytes() == before
