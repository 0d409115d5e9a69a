"""Build WPP firmware for a board: the twin's ROM locally, the lab board's ROM in Docker.

The recipes live in shell (`firmware/build.sh emulated`, `firmware/board/build-board.sh`);
this module constructs their command lines, checks the prerequisites with a clear error
and runs them. The board build follows Dasharo's documented procedure (a checkout of
Dasharo's coreboot at a release tag, built inside Dasharo's SDK container) with the WPP
patches applied to a copy of the tree inside the container.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.build.container import ContainerBuild
from hil.cache.keys import cache_root
from hil.core.errors import HilError, MissingToolError
from hil.core.runs import REPO_ROOT

BUILD_SCRIPT = REPO_ROOT / "firmware" / "build.sh"

# Pinned Dasharo release for the MSI PRO Z690-A (Dasharo docs recommend release tags).
DASHARO_REPO = "https://github.com/Dasharo/coreboot.git"
DASHARO_TAG = "msi_ms7d25_v1.1.3"
# SDK image used when the tag's own build.sh does not name one (Dasharo's build.sh sets
# DASHARO_SDK / SDKVER; `sdk_image_from_tree` prefers that value).
DEFAULT_SDK_IMAGE = "ghcr.io/dasharo/dasharo-sdk:v1.1.3"
# The lab board is the DDR5 variant (lab.md); Dasharo names the config per variant.
DASHARO_CONFIG = "configs/config.msi_ms7d25"
CONTAINER_TREE = "/home/coreboot/coreboot"  # where Dasharo's own build mounts the tree
CONTAINER_OUT = "/out"

Runner = Callable[..., subprocess.CompletedProcess[str]]


def emulated_command(kernel: Path | None = None, initrd: Path | None = None,
                     cmdline: str | None = None) -> list[str]:
    """``firmware/build.sh emulated [...]`` (prints the ROM path on its last stdout line)."""
    if initrd is not None and kernel is None:
        raise HilError("an initrd needs a kernel", "pass --kernel as well")
    cmd = ["bash", str(BUILD_SCRIPT), "emulated"]
    if kernel is not None:
        cmd += ["--kernel", str(kernel)]
    if initrd is not None:
        cmd += ["--initrd", str(initrd)]
    if cmdline is not None:
        cmd += ["--cmdline", cmdline]
    return cmd


@dataclass(frozen=True)
class BoardBuild:
    """Inputs of the lab board build; `docker_command` is what runs."""

    tree: Path  # Dasharo coreboot checkout at `tag`, submodules initialised
    out: Path
    sdk_image: str = DEFAULT_SDK_IMAGE
    config: str = DASHARO_CONFIG
    tag: str = DASHARO_TAG
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    jobs: int = 2

    def container(self) -> ContainerBuild:
        """The build under `hil.build.container`'s contract; the Dasharo tree is read-only."""
        return ContainerBuild(
            image=self.sdk_image,
            script=("firmware/build.sh", "board", "--tree", CONTAINER_TREE,
                    "--out", CONTAINER_OUT, "--config", self.config, "--jobs", str(self.jobs)),
            out=self.out, cache=self.out.parent / f"{self.out.name}.cache",
            ro_mounts=((self.tree, CONTAINER_TREE),), uid=self.uid, gid=self.gid)

    def docker_command(self) -> list[str]:
        return self.container().command()

    def clone_command(self) -> list[str]:
        """Fetch the pinned Dasharo tree (network; run once, cached)."""
        return ["git", "clone", "--depth", "1", "--branch", self.tag,
                "--recurse-submodules", "--shallow-submodules", DASHARO_REPO, str(self.tree)]


def sdk_image_from_tree(tree: Path) -> str | None:
    """The SDK image Dasharo's build.sh at this tag uses, if it names one."""
    script = tree / "build.sh"
    if not script.is_file():
        return None
    text = script.read_text(errors="replace")
    m = re.search(r'DASHARO_SDK=\$\{DASHARO_SDK:-"?([^}"\s]+)"?\}', text) or re.search(
        r'^DASHARO_SDK="?([^"\s]+)"?', text, re.M)
    if m:
        return m.group(1)
    m = re.search(r'^SDKVER="?([^"\s]+)"?', text, re.M)
    if m:
        return f"coreboot/coreboot-sdk:{m.group(1)}"
    return None


def check_docker(which: Callable[[str], str | None] = shutil.which,
                 run: Runner = subprocess.run) -> None:
    """Fail with a hint unless a Docker engine answers."""
    if which("docker") is None:
        raise MissingToolError("docker", "docker.io")
    proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
               text=True, timeout=30)
    if proc.returncode != 0:
        raise HilError(
            "no Docker engine is running here: the MSI Z690 firmware is built in "
            "Dasharo's SDK container",
            "start the engine ('systemctl start docker') or build on a machine with Docker; "
            "the twin's firmware needs no Docker ('hil build firmware --board emulated')",
        )


def default_tree(tag: str = DASHARO_TAG) -> Path:
    return cache_root() / "dasharo" / tag / "coreboot"


def board_out_dir(tag: str = DASHARO_TAG) -> Path:
    return cache_root() / "firmware" / "board" / tag


@dataclass(frozen=True)
class BoardSettings:
    """What the inventory's ``firmware:`` section of a board says about its build."""

    tag: str = DASHARO_TAG
    sdk_image: str | None = None  # None: what the tag's build.sh names, else the default
    config: str = DASHARO_CONFIG  # path inside the Dasharo tree

    @classmethod
    def of(cls, firmware: Mapping[str, Any] | None) -> BoardSettings:
        """The inventory's ``dasharo_tag``, ``sdk_image`` and ``config``, each optional."""
        fw = firmware or {}
        return cls(tag=str(fw.get("dasharo_tag") or DASHARO_TAG),
                   sdk_image=str(fw["sdk_image"]) if fw.get("sdk_image") else None,
                   config=str(fw.get("config") or DASHARO_CONFIG))


def build_board(tree: Path | None = None, out: Path | None = None,
                sdk_image: str | None = None, run: Runner = subprocess.run,
                which: Callable[[str], str | None] = shutil.which,
                settings: BoardSettings | None = None) -> Path:
    """Build the lab board's ROM in Docker; returns the ROM path.

    `settings` come from the board's inventory (tag, SDK image, config); an explicit
    `sdk_image` wins over them, and without either the tag's own build.sh names the SDK.
    """
    check_docker(which, run)
    settings = settings or BoardSettings()
    sdk_image = sdk_image or settings.sdk_image
    tree = tree or default_tree(settings.tag)
    out = out or board_out_dir(settings.tag)
    spec = BoardBuild(tree=tree, out=out, sdk_image=sdk_image or DEFAULT_SDK_IMAGE,
                      config=settings.config, tag=settings.tag)
    if not (tree / "Makefile").is_file():
        if which("git") is None:
            raise MissingToolError("git", "git")
        tree.parent.mkdir(parents=True, exist_ok=True)
        proc = run(spec.clone_command(), capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise HilError(f"could not fetch Dasharo {spec.tag}: {proc.stderr.strip()[-300:]}",
                           f"clone {DASHARO_REPO} at {spec.tag} into {tree} by hand")
    if sdk_image is None:
        spec = dataclasses.replace(spec, sdk_image=sdk_image_from_tree(tree) or DEFAULT_SDK_IMAGE)
    rom = spec.container().run(run)
    if not rom.is_file():
        raise HilError(f"board build finished but {rom} is missing")
    return rom


def build_emulated(kernel: Path | None = None, initrd: Path | None = None,
                   cmdline: str | None = None,
                   run_script: Callable[[str, Sequence[str]], Path] | None = None) -> Path:
    """The twin's ROM (cached by firmware/build.sh); returns its path."""
    if run_script is None:
        from hil.build.twin import run_build_script

        def run_script(label: str, argv: Sequence[str]) -> Path:
            return run_build_script(label, list(argv))

    argv = emulated_command(kernel, initrd, cmdline)[1:]  # run_build_script adds bash
    return run_script("firmware", argv)
