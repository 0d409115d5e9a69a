"""Command construction and prerequisite checks of hil/build/firmware.py (no Docker here)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hil.build import firmware as bf
from hil.core.errors import HilError, MissingToolError


def test_emulated_command_forms() -> None:
    assert bf.emulated_command()[1:] == [str(bf.BUILD_SCRIPT), "emulated"]
    cmd = bf.emulated_command(Path("/k/bzImage"), Path("/k/initrd"), "console=ttyS0,115200")
    assert cmd[-6:] == ["--kernel", "/k/bzImage", "--initrd", "/k/initrd", "--cmdline",
                        "console=ttyS0,115200"]
    assert bf.emulated_command(Path("/k"), cmdline="")[-2:] == ["--cmdline", ""]
    with pytest.raises(HilError):
        bf.emulated_command(initrd=Path("/k/initrd"))


def test_docker_command_mounts_and_entrypoint(tmp_path: Path) -> None:
    spec = bf.BoardBuild(tree=tmp_path / "cb", out=tmp_path / "out", sdk_image="img:1",
                         uid=1000, gid=1001, jobs=4)
    cmd = spec.docker_command()
    assert cmd[:3] == ["docker", "run", "--rm"]
    assert cmd[cmd.index("--user") + 1] == "1000:1001"
    vols = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--volume"]
    assert f"{tmp_path / 'cb'}:/home/coreboot/coreboot:ro" in vols
    assert f"{bf.REPO_ROOT}:/wpp:ro" in vols
    assert f"{tmp_path / 'out'}:/out" in vols
    i = cmd.index("img:1")
    assert cmd[i + 1:i + 4] == ["bash", "firmware/build.sh", "board"]
    assert cmd[cmd.index("--tree") + 1] == "/home/coreboot/coreboot"
    assert cmd[cmd.index("--config") + 1] == bf.DASHARO_CONFIG
    assert cmd[cmd.index("--jobs") + 1] == "4"
    clone = spec.clone_command()
    assert clone[:2] == ["git", "clone"] and bf.DASHARO_TAG in clone and bf.DASHARO_REPO in clone
    assert bf.DASHARO_TAG.startswith("msi_ms7d25_v")


@pytest.mark.parametrize(
    ("script", "image"),
    [
        ('DASHARO_SDK=${DASHARO_SDK:-ghcr.io/dasharo/dasharo-sdk:v1.4.0}\n',
         "ghcr.io/dasharo/dasharo-sdk:v1.4.0"),
        ('DASHARO_SDK="ghcr.io/dasharo/dasharo-sdk:v1.2.0"\n',
         "ghcr.io/dasharo/dasharo-sdk:v1.2.0"),
        ('SDKVER="2021-09-23_b0d87f753c"\n', "coreboot/coreboot-sdk:2021-09-23_b0d87f753c"),
        ("echo nothing here\n", None),
    ],
)
def test_sdk_image_from_tree(tmp_path: Path, script: str, image: str | None) -> None:
    (tmp_path / "build.sh").write_text("#!/bin/bash\n" + script)
    assert bf.sdk_image_from_tree(tmp_path) == image
    assert bf.sdk_image_from_tree(tmp_path / "missing") is None


def _run_factory(rc: int) -> Any:
    calls: list[list[str]] = []

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, rc, "", "Cannot connect to the Docker daemon")

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_no_docker_binary_is_a_missing_tool() -> None:
    with pytest.raises(MissingToolError) as e:
        bf.check_docker(which=lambda name: None, run=_run_factory(0))
    assert "docker" in str(e.value) and e.value.hint


def test_no_docker_engine_says_so_with_hint(tmp_path: Path) -> None:
    run = _run_factory(1)
    with pytest.raises(HilError) as e:
        bf.build_board(tree=tmp_path, out=tmp_path / "out", run=run,
                       which=lambda name: f"/usr/bin/{name}")
    assert "no Docker engine" in str(e.value)
    assert "emulated" in (e.value.hint or "")
    assert run.calls == [["docker", "info", "--format", "{{.ServerVersion}}"]]


def _fake_dasharo(tmp_path: Path) -> tuple[Path, Path, Any, list[list[str]]]:
    """A Dasharo tree whose build.sh names an SDK, and a `run` that plays git and docker."""
    tree = tmp_path / "cb"
    tree.mkdir()
    (tree / "Makefile").write_text("")
    (tree / "build.sh").write_text('DASHARO_SDK=${DASHARO_SDK:-ghcr.io/dasharo/dasharo-sdk:v9}\n')
    out = tmp_path / "out"
    calls: list[list[str]] = []

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if cmd[:2] == ["docker", "run"]:
            (out / "coreboot.rom").write_bytes(b"\xff" * 16)
            return subprocess.CompletedProcess(cmd, 0, "/out/coreboot.rom\n", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    return tree, out, run, calls


def test_build_board_runs_docker_with_tree_sdk(tmp_path: Path) -> None:
    tree, out, run, calls = _fake_dasharo(tmp_path)

    rom = bf.build_board(tree=tree, out=out, run=run, which=lambda n: f"/usr/bin/{n}")
    assert rom == out / "coreboot.rom"
    assert calls[1][:2] == ["docker", "run"] and "ghcr.io/dasharo/dasharo-sdk:v9" in calls[1]


def test_build_emulated_uses_script_runner(tmp_path: Path) -> None:
    seen: list[tuple[str, list[str]]] = []

    def run_script(label: str, argv: Any) -> Path:
        seen.append((label, list(argv)))
        return tmp_path / "coreboot.rom"

    rom = bf.build_emulated(Path("/k/bzImage"), None, "console=ttyS0", run_script=run_script)
    assert rom == tmp_path / "coreboot.rom"
    assert seen == [("firmware", [str(bf.BUILD_SCRIPT), "emulated", "--kernel", "/k/bzImage",
                                  "--cmdline", "console=ttyS0"])]


def test_build_board_uses_the_inventory_settings(tmp_path: Path) -> None:
    """The board's ``firmware:`` section (tag, SDK image, config) decides the build; before,
    they were read by nobody and the code's constants built something else."""
    from hil.core.inventory import load

    board = load(bf.REPO_ROOT / "inventory.yaml").board("msi-z690")
    settings = bf.BoardSettings.of(board.firmware)
    assert settings == bf.BoardSettings(tag=board.firmware["dasharo_tag"],
                                        sdk_image=board.firmware["sdk_image"],
                                        config=board.firmware["config"])
    tree, out, run, calls = _fake_dasharo(tmp_path)

    custom = bf.BoardSettings(tag="msi_ms7d25_v9", sdk_image="example/sdk:1",
                              config="configs/config.msi_ms7d25_ddr4")
    bf.build_board(tree=tree, out=out, run=run, which=lambda n: f"/usr/bin/{n}",
                   settings=custom)
    docker = calls[1]
    assert "example/sdk:1" in docker and "ghcr.io/dasharo/dasharo-sdk:v9" not in docker
    assert docker[docker.index("--config") + 1] == "configs/config.msi_ms7d25_ddr4"
    # without an SDK in the inventory, the tag's own build.sh names it
    calls.clear()
    bf.build_board(tree=tree, out=out, run=run, which=lambda n: f"/usr/bin/{n}",
                   settings=bf.BoardSettings(tag="t", config="c"))
    assert "ghcr.io/dasharo/dasharo-sdk:v9" in calls[1]
    assert bf.BoardSettings.of({}) == bf.BoardSettings()
