"""``hil put`` / ``hil get`` end to end: the CLI, an inventory, a real sshd with SFTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sshd_fixture
import yaml
from sshd_fixture import SshServer

from hil.cli.main import main

REPO = Path(__file__).resolve().parents[2]
sshd = sshd_fixture.sshd


@pytest.fixture
def inv(sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    raw = yaml.safe_load((REPO / "inventory.yaml").read_text())
    board = raw["boards"]["msi-z690"]
    board["ssh"] = {"host": sshd.host, "port": sshd.port, "user": sshd.user,
                    "key_file": str(sshd.key_file)}
    board["flash"]["runs_on"] = "local"  # its lease then lives in this test's cache
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("WPP_HIL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HIL_LEASE", raising=False)
    return path


def hil(inv: Path, *args: str) -> int:
    return main(["--inventory", str(inv), *args, "--board", "msi-z690"])


def test_put_then_get_round_trips_a_binary(inv: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "tool.bin"
    src.write_bytes(os.urandom(300_000))
    src.chmod(0o755)
    board_dir = tmp_path / "on-board"
    board_dir.mkdir()
    assert hil(inv, "put", str(src), f"{board_dir}/", "--json") == 0
    put = json.loads(capsys.readouterr().out)
    assert put["destination"] == str(board_dir / "tool.bin") and put["size"] == 300_000
    assert (board_dir / "tool.bin").read_bytes() == src.read_bytes()
    assert os.access(board_dir / "tool.bin", os.X_OK)  # an executable stays executable
    back = tmp_path / "back"
    back.mkdir()
    assert hil(inv, "get", str(board_dir / "tool.bin"), str(back)) == 0
    out = capsys.readouterr().out
    assert "300000 bytes" in out and "on both sides" in out
    assert (back / "tool.bin").read_bytes() == src.read_bytes()


def test_missing_files_are_clear_errors(inv: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert hil(inv, "put", str(tmp_path / "nope"), "/tmp/") == 2
    assert "no such file" in capsys.readouterr().err
    assert hil(inv, "get", str(tmp_path / "nope-remote"), str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "cannot checksum" in err and "nope-remote" in err
    assert hil(inv, "get", "/etc/hostname", str(tmp_path / "no" / "dir" / "f")) == 2
    assert "no directory" in capsys.readouterr().err
