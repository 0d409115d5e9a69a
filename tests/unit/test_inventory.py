"""Inventory loader: the shipped inventory parses, and every error names file, key path, cause."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hil.cli.main import main
from hil.core import inventory
from hil.core.errors import ConfigError, MissingSecretError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO / "inventory.yaml").read_text())


def parse(data: dict, tmp_path: Path) -> inventory.Inventory:
    p = tmp_path / "inv.yaml"
    p.write_text(yaml.safe_dump(data))
    return inventory.load(p)


def test_shipped_inventory_has_both_boards() -> None:
    inv = inventory.load(REPO / "inventory.yaml")
    assert set(inv.boards) == {"msi-z690", "emulated"}
    board = inv.board("msi-z690")
    assert board.flash.chip_size == 32 << 20
    assert board.flash.ifd_region == "bios"
    assert board.flash.remote_host == "root@pikvm.lab.local"
    assert board.wpp.mailbox_addr == 0x10000000
    assert board.power_cut.kind == "pikvm-gpio" and board.power_cut.hold_s == 15
    assert not board.is_emulated
    twin = inv.board("emulated")
    assert twin.is_emulated and twin.flash.chip_size == 16 << 20
    assert inv.board().name == inv.default_board


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["boards"]["msi-z690"]["pikvm"].update(colour="red"),
         "boards.msi-z690.pikvm.colour: unknown key 'colour'"),
        (lambda d: d["boards"]["msi-z690"]["flash"].update(chip_size="big"),
         "boards.msi-z690.flash.chip_size: expected an integer, got str 'big'"),
        (lambda d: d["boards"]["msi-z690"]["serial"].pop("url"),
         "boards.msi-z690.serial.url: missing required key"),
        (lambda d: d["boards"]["msi-z690"]["pikvm"].update(url="ftp://x"),
         "boards.msi-z690.pikvm.url: bad URL 'ftp://x'"),
        (lambda d: d["boards"]["msi-z690"]["serial"].update(url="socket://host:notaport"),
         "invalid port"),
        (lambda d: d["boards"]["msi-z690"]["power_cut"].update(kind="magic"),
         "power_cut.kind: expected one of pikvm-gpio, http-plug, qemu"),
        (lambda d: d["boards"]["msi-z690"]["power_cut"].update(kind="http-plug"),
         "power_cut.url: missing required key"),
        (lambda d: d["boards"]["msi-z690"]["flash"].update(runs_on="pikvm"),
         "flash.runs_on: expected 'local' or 'ssh:<user@host>'"),
        (lambda d: d["boards"]["msi-z690"]["wpp"].update(device_id="xyz"),
         "wpp.device_id: expected 'vvvv:dddd'"),
        (lambda d: d["boards"]["msi-z690"]["wpp"].update(mailbox_addr=0xF8000000),
         "must lie below 4 GiB"),
        (lambda d: d["boards"]["msi-z690"]["flash"].update(wp_disable="yes"),
         "flash.wp_disable: expected true or false"),
        (lambda d: d["boards"]["msi-z690"]["pikvm"].pop("password_env"),
         "pikvm.password_env: missing required key"),
        (lambda d: d["boards"]["msi-z690"]["power_cut"].update(cut_state="on"),
         "power_cut.cut_state: expected true or false, got 'on'"),
        (lambda d: d["boards"]["msi-z690"]["power_cut"].update(
            kind="http-plug", url="http://plug", cut_state=False),
         "power_cut.cut_state: only a GPIO relay has a cut_state"),
        (lambda d: d.update(default_board="nope"), "default_board: names no board"),
        (lambda d: d["boards"].update(x=[1, 2]), "boards.x: expected a mapping, got list"),
    ],
)
def test_errors_name_file_keypath_and_cause(raw, tmp_path, mutate, fragment) -> None:
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(ConfigError) as exc:
        parse(data, tmp_path)
    assert str(tmp_path / "inv.yaml") in str(exc.value)
    assert fragment in str(exc.value)


def test_yaml_syntax_error_names_line(tmp_path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("boards:\n  a: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: not valid YAML"):
        inventory.load(p)


def test_missing_file_gives_hint(tmp_path) -> None:
    with pytest.raises(ConfigError) as exc:
        inventory.load(tmp_path / "none.yaml")
    assert "cannot read inventory" in str(exc.value) and "--inventory" in exc.value.hint


def test_secret_from_env_and_file_never_in_repr(monkeypatch, tmp_path) -> None:
    inv = inventory.load(REPO / "inventory.yaml")
    secret = inv.board("msi-z690").pikvm.password
    monkeypatch.delenv("PIKVM_PASSWORD", raising=False)
    with pytest.raises(MissingSecretError) as exc:
        secret.get()
    assert "PIKVM_PASSWORD" in str(exc.value) and "export PIKVM_PASSWORD" in exc.value.hint
    monkeypatch.setenv("PIKVM_PASSWORD", "hunter2")
    assert secret.get() == "hunter2"
    assert "hunter2" not in repr(secret) and "hunter2" not in repr(inv.board("msi-z690"))
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    from_file = inventory.Secret("x", None, f)
    assert from_file.get() == "s3cret"
    assert "s3cret" not in str(inv.board("msi-z690").summary())


def test_cli_check_exit_codes(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PIKVM_PASSWORD", "topsecret")
    assert main(["inventory", "check"]) == 0
    out = capsys.readouterr().out
    assert "msi-z690" in out and "emulated" in out and "topsecret" not in out
    assert main(["inventory", "check", "--board", "nope"]) == 2
    assert "no board named 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("boards: {}\n")
    assert main(["--inventory", str(bad), "inventory", "check"]) == 2
    assert "boards: expected a non-empty mapping of boards" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["inventory", "frobnicate"])
    assert exc.value.code == 2


def test_cache_placeholder_follows_wpp_hil_cache(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin's key and state are build products in the cache: `{cache}` in a path
    follows $WPP_HIL_CACHE, so a run with its own cache uses its own key."""
    monkeypatch.setenv("WPP_HIL_CACHE", str(tmp_path / "c"))
    twin = inventory.load(REPO / "inventory.yaml").board("emulated")
    assert twin.ssh.key_file == tmp_path / "c" / "keys" / "twin_ed25519"
    assert twin.emulated is not None
    assert twin.emulated.state_dir == tmp_path / "c" / "twins" / "emulated"
    monkeypatch.delenv("WPP_HIL_CACHE")
    home = Path("~/.cache/wpp-hil").expanduser()
    assert inventory.load(REPO / "inventory.yaml").board("emulated").ssh.key_file == \
        home / "keys" / "twin_ed25519"


def test_power_cut_cut_state_defaults_to_true_and_is_read(raw, tmp_path) -> None:
    """The GPIO state meaning "mains cut" depends on the relay's wiring; true is the
    default (today's behaviour) and false is kept."""
    inv = parse(copy.deepcopy(raw), tmp_path)
    assert inv.board("msi-z690").power_cut.cut_state is True
    data = copy.deepcopy(raw)
    data["boards"]["msi-z690"]["power_cut"].pop("cut_state", None)
    assert parse(data, tmp_path).board("msi-z690").power_cut.cut_state is True
    data["boards"]["msi-z690"]["power_cut"]["cut_state"] = False
    board = parse(data, tmp_path).board("msi-z690")
    assert board.power_cut.cut_state is False
    assert board.summary()["power_cut"]["cut_state"] is False


def test_unset_optional_2fa_secret_is_not_missing(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PIKVM_PASSWORD", "topsecret")
    monkeypatch.delenv("PIKVM_TOTP", raising=False)
    board = inventory.load(REPO / "inventory.yaml").board("msi-z690")
    assert board.summary()["pikvm"]["totp"] == "$PIKVM_TOTP (not set, optional)"
    assert board.pikvm.totp_secret.get_optional() is None
    monkeypatch.delenv("PIKVM_PASSWORD")
    assert board.summary()["pikvm"]["password"] == "$PIKVM_PASSWORD (MISSING)"  # required
    monkeypatch.setenv("PIKVM_TOTP", "JBSWY3DPEHPK3PXP")
    assert board.summary()["pikvm"]["totp"] == "$PIKVM_TOTP (set)"
