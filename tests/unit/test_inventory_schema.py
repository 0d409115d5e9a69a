"""The inventory schema is declared once: the section dataclasses are the schema.

Adding a key is one edit (a field with `inventory.key(...)`): the accepted keys, the type
check, the default and the error messages all follow from that declaration.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from hil.core import inventory
from hil.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "inventory.yaml").read_text())


def _under_ten(v: float) -> str | None:
    return None if v < 10 else f"expected less than 10 s, got {v}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerWithDelay(inventory.PowerConfig):
    """PowerConfig plus one key, declared by one field and nothing else."""

    on_delay_s: float = inventory.key(2.0, check=_under_ten)


def build(cls: type, data: Any) -> Any:
    return inventory.build_section(cls, Path("inv.yaml"), "boards.b.power", data)


def test_one_new_key_is_one_edit() -> None:
    assert inventory.accepted_keys(PowerWithDelay) == \
        inventory.accepted_keys(inventory.PowerConfig) | {"on_delay_s"}
    assert build(PowerWithDelay, {"kind": "pikvm-atx", "on_delay_s": 3}).on_delay_s == 3.0
    assert build(PowerWithDelay, {"kind": "pikvm-atx"}).on_delay_s == 2.0  # the default
    with pytest.raises(ConfigError, match=r"inv.yaml: boards.b.power.on_delay_s: "
                       r"expected a number, got str 'soon'"):
        build(PowerWithDelay, {"kind": "pikvm-atx", "on_delay_s": "soon"})
    with pytest.raises(ConfigError, match=r"power.on_delay_s: expected less than 10 s, got 12"):
        build(PowerWithDelay, {"kind": "pikvm-atx", "on_delay_s": 12})
    with pytest.raises(ConfigError, match=r"power.on_delay_s: unknown key 'on_delay_s'") as exc:
        build(inventory.PowerConfig, {"kind": "pikvm-atx", "on_delay_s": 3})
    assert exc.value.hint == "allowed keys here: kind, off_timeout_s"


def test_accepted_keys_are_the_declared_fields() -> None:
    """Secrets are named by <field>_env / <field>_file; a board's name is not a key."""
    assert inventory.accepted_keys(inventory.PiKVMConfig) == {
        "url", "user", "password_env", "password_file", "totp_secret_env",
        "totp_secret_file", "verify", "ca_file"}
    assert inventory.accepted_keys(inventory.Board) == {
        f.name for f in dataclasses.fields(inventory.Board)} - {"name"}
    assert inventory.accepted_keys(inventory.FlashConfig) >= {
        "ssh_key_file", "ssh_password_env", "ssh_password_file"}


def test_every_shipped_key_is_declared(raw: dict[str, Any]) -> None:
    """The shipped inventory uses only declared keys, section by section (the section
    classes are found from Board's own field types)."""
    hints = typing.get_type_hints(inventory.Board)
    for board in raw["boards"].values():
        assert set(board) <= inventory.accepted_keys(inventory.Board)
        for name, section in board.items():
            cls = inventory._optional(hints[name])[0]
            if dataclasses.is_dataclass(cls):
                assert set(section) <= inventory.accepted_keys(cls), name


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda b: b["pikvm"].update(password_env=5),
         "boards.msi-z690.pikvm.password_env: expected a string, got int 5"),
        (lambda b: b.update(power="atx"),
         "boards.msi-z690.power: expected a mapping, got str"),
        (lambda b: b.update(colour="red"), "boards.msi-z690.colour: unknown key 'colour'"),
        (lambda b: b.pop("wpp"), "boards.msi-z690.wpp: missing required key"),
        (lambda b: b.update(firmware={"dasharo_tag": "x"}),
         "boards.msi-z690.firmware: expected a mapping with at least 'kind'"),
        (lambda b: b["ssh"].update(port=70000),
         "boards.msi-z690.ssh.port: expected a port number (0-65535), got 70000"),
        (lambda b: b["ssh"].update(port=-1),
         "boards.msi-z690.ssh.port: expected a non-negative integer, got -1"),
        (lambda b: b["flash"].update(chip_size=4097),
         "flash.chip_size: expected a chip size in bytes (multiple of 4096), got 4097"),
        (lambda b: b["flash"].pop("ssh_key_file"),
         "flash.runs_on: flashrom runs over SSH but no credentials are named"),
        (lambda b: b["power"].update(off_timeout_s=True),
         "power.off_timeout_s: expected a number, got bool True"),
        (lambda b: b["power"].update(kind="ipmi"),
         "power.kind: expected one of pikvm-atx, got 'ipmi'"),
        (lambda b: b["serial"].update(url="/dev/ttyUSB0", baudrate="fast"),
         "serial.baudrate: expected an integer, got str 'fast'"),
        (lambda b: b.update(emulated={"smp": 2}),
         "boards.msi-z690.emulated.state_dir: missing required key"),
    ],
)
def test_generic_errors_keep_key_path_expected_and_found(raw, tmp_path, mutate,
                                                         fragment) -> None:
    data = copy.deepcopy(raw)
    mutate(data["boards"]["msi-z690"])
    p = tmp_path / "inv.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        inventory.load(p)
    assert str(p) in str(exc.value)
    assert fragment in str(exc.value)


def test_sections_still_replace_and_default(raw) -> None:
    """The API the twin and the tests use: dataclasses.replace on a section, Board.replace."""
    twin = inventory.load(REPO / "inventory.yaml").board("emulated")
    assert twin.emulated is not None
    two = dataclasses.replace(twin.emulated, smp=4)
    assert two.smp == 4 and two.memory_mib == twin.emulated.memory_mib
    moved = twin.replace(emulated=two)
    assert moved.emulated is two and moved.name == "emulated"
    assert inventory.PowerConfig(kind="pikvm-atx").off_timeout_s == 60.0
    assert inventory.SshConfig(host="h").user == "root"
