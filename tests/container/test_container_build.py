"""A real build through the container path the board's builds use (hil.build.container).

The board's kernel and firmware are built in containers; CI has no board, so it builds the
twin's coreboot through the very same `ContainerBuild` (mounts, user id, output contract)
in a builder image made here from Debian packages, and checks the ROM it hands back.
Needs a Docker engine: `.ci/run` starts one (`.ci/docker-engine`); where none can run, the
test is skipped with the engine's own reason, and `.ci/run` says so in its log.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hil.build.container import (
    ContainerBuild,
    engine_problem,
    ensure_builder_image,
    twin_firmware_build,
)

REPO = Path(__file__).resolve().parents[2]
ROM_SIZE = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def builder() -> str:
    problem = engine_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine here: {problem}")
    return ensure_builder_image()


@pytest.mark.slow
def test_twin_firmware_builds_in_the_container(builder: str, tmp_path: Path) -> None:
    # the host fetches the pinned coreboot tree; the container sees it read-only
    subprocess.run(["bash", str(REPO / "firmware" / "coreboot-source.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    spec = twin_firmware_build(builder)
    spec = ContainerBuild(**{**spec.__dict__, "out": tmp_path / "out",
                             "cache": tmp_path / "cache"})
    rom = spec.run()
    assert rom.is_relative_to(tmp_path / "cache"), rom
    assert rom.name == "coreboot.rom" and rom.stat().st_size == ROM_SIZE
    # written as the calling user, never as the container's root on somebody's behalf
    assert rom.stat().st_uid == os.getuid() and rom.stat().st_gid == os.getgid()
    data = rom.read_bytes()
    assert b"LARCHIVE" in data  # a CBFS with files in it
    manifest = (rom.parent / "manifest.json").read_text()
    assert '"target": "emulation/qemu-q35"' in manifest
    # the repository stayed read-only to the build: nothing appeared in the checkout
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--ignored",
                             "firmware"], capture_output=True, text=True, check=True)
    assert "coreboot.rom" not in status.stdout
