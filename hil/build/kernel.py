"""Build the WPP kernel for a board: the twin's bzImage, or Debian packages for the lab board.

`kernel/build.sh` owns the recipe and the cache (keyed by the hash of every input). This
module builds the commands around it: for the twin it runs the script directly; for the lab
board (Ubuntu 22.04) it runs the same script inside a Docker image built from
``kernel/config/board.Dockerfile``, so the packages match the board's userland, with the
pinned Debian kernel source tarball mounted read-only. That tarball is the one
``kernel/source.sh`` fetched into the cache (never the host's installed package, whose
revision Debian moves every few weeks). The machines that build the twin
have no Docker engine: that is reported as a `HilError` with a hint instead of a traceback.

``python -m hil.build.kernel board|emulated [--jobs N]`` prints the result's path last.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hil.cache.keys import cache_root
from hil.build.container import C_CACHE, C_OUT, ContainerBuild, require_engine
from hil.core.errors import HilError
from hil.core.runs import REPO_ROOT

BUILD_SCRIPT = Path("kernel/build.sh")
SOURCE_SCRIPT = Path("kernel/source.sh")
DOCKERFILE = Path("kernel/config/board.Dockerfile")
# The board runs Ubuntu 22.04; CI machines can only make Debian images (no registry), so
# the base is configurable (`hil build kernel --base-image`, WPP_KERNEL_BASE_IMAGE).
DEFAULT_BASE_IMAGE = "ubuntu:22.04"
BOARD_IMAGE = "wpp-hil/kernel-board"
C_TAR = "/usr/src/linux-source-6.1.tar.xz"  # where build.sh looks in the container

Runner = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class BoardPlan:
    """What building the board's kernel packages takes: the image build, then the build."""

    out_dir: Path
    image_build: tuple[str, ...]
    build: ContainerBuild

    @property
    def commands(self) -> tuple[tuple[str, ...], ...]:
        return self.image_build, tuple(self.build.command())


def emulated_command(repo: Path = REPO_ROOT, jobs: int = 2) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment for the twin's bzImage (last stdout line: its path)."""
    return ["bash", str(repo / BUILD_SCRIPT), "emulated"], {"JOBS": str(jobs)}


def pinned_version(repo: Path = REPO_ROOT) -> str:
    """The linux-source-6.1 revision kernel/source.sh is pinned to (its PINNED_VERSION)."""
    for line in (repo / SOURCE_SCRIPT).read_text().splitlines():
        if line.startswith("PINNED_VERSION=") and "$" not in line:
            return line.split("=", 1)[1].strip().strip('"')
    raise HilError(f"{SOURCE_SCRIPT} has no PINNED_VERSION line", "restore kernel/source.sh")


def _source_script(repo: Path, verb: str, runner: Runner) -> str:
    res = runner(["bash", str(repo / SOURCE_SCRIPT), verb], stdout=subprocess.PIPE, text=True,
                 cwd=repo)
    lines = (res.stdout or "").strip().splitlines()
    if res.returncode != 0 or not lines:
        raise HilError(f"kernel/source.sh {verb} failed", "see its error and hint above")
    return lines[-1]


def source_version(repo: Path = REPO_ROOT, runner: Runner = subprocess.run) -> str:
    """The source revision a build uses now (pinned, or the recorded fallback); no download."""
    return _source_script(repo, "version", runner)


def source_tarball(repo: Path = REPO_ROOT, runner: Runner = subprocess.run) -> Path:
    """Fetch (once, into the cache) and return the kernel source tarball the build uses.

    Its directory is named after its revision (``kernel/source/<version>/``).
    """
    return Path(_source_script(repo, "tarball", runner))


def board_out_dir(input_hash: str, cache: Path | None = None) -> Path:
    """Where the board's packages for this input hash land (and are found when cached)."""
    return (cache or cache_root()) / "kernel" / "out" / f"board-{input_hash}"


def image_tag(base_image: str) -> str:
    """The build image's tag: one per base, so switching bases never reuses the other."""
    return f"{BOARD_IMAGE}:{re.sub(r'[^A-Za-z0-9_.-]', '-', base_image)[:100]}"


def board_plan(input_hash: str, source_tar: Path, *, repo: Path = REPO_ROOT,
               cache: Path | None = None, jobs: int = 2, docker: str = "docker",
               base_image: str = DEFAULT_BASE_IMAGE, uid: int | None = None,
               gid: int | None = None) -> BoardPlan:
    """The image build and the container build of the board's packages.

    The build runs under `hil.build.container`'s contract (repository read-only, the calling
    user, results under /out). `source_tar` is the fetched tarball
    (``kernel/source/<version>/linux-source-6.1.tar.xz``), mounted where build.sh looks.
    """
    out = board_out_dir(input_hash, cache)
    tag = image_tag(base_image)
    image_build = (docker, "build", "--tag", tag, "--build-arg", f"BASE={base_image}",
                   "--file", str(repo / DOCKERFILE), str(repo / DOCKERFILE.parent))
    ids = {k: v for k, v in (("uid", uid), ("gid", gid)) if v is not None}
    build = ContainerBuild(
        image=tag, script=(str(BUILD_SCRIPT), "board-in-container", C_OUT,
                           f"{C_CACHE}/work-board"),
        out=out, cache=(cache or cache_root()) / "kernel" / "board-cache", repo=repo,
        ro_mounts=((source_tar, C_TAR),),
        env=(("JOBS", str(jobs)), ("WPP_SOURCE_VERSION", source_tar.parent.name)),
        docker=docker, **ids)
    return BoardPlan(out, image_build, build)


def check_docker(docker: str = "docker", runner: Runner = subprocess.run) -> None:
    """Raise unless a Docker engine answers (the CLI alone is not enough)."""
    require_engine(docker, runner, instead="the twin's kernel needs none: "
                   "'kernel/build.sh emulated'")


def input_hash(repo: Path = REPO_ROOT, target: str = "board",
               runner: Runner = subprocess.run) -> str:
    """kernel/build.sh's cache key for `target`."""
    res = runner(["bash", str(repo / BUILD_SCRIPT), "hash", target], capture_output=True,
                 text=True, cwd=repo)
    if res.returncode != 0 or not res.stdout.strip():
        raise HilError(f"kernel/build.sh hash {target} failed: {res.stderr.strip()}",
                       "run it by hand to see why")
    return res.stdout.strip().splitlines()[-1]


def build_board(*, repo: Path = REPO_ROOT, cache: Path | None = None, jobs: int = 2,
                docker: str = "docker", base_image: str | None = None,
                runner: Runner = subprocess.run) -> Path:
    """Build (or reuse) the board's kernel packages; return the directory holding the .debs."""
    key = input_hash(repo, runner=runner)
    if any(board_out_dir(key, cache).glob("*.deb")):
        return board_out_dir(key, cache)
    check_docker(docker, runner)
    base = base_image or os.environ.get("WPP_KERNEL_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    plan = board_plan(key, source_tarball(repo, runner), repo=repo, cache=cache, jobs=jobs,
                      docker=docker, base_image=base)
    print("+ " + " ".join(plan.image_build), file=sys.stderr)
    res = runner(list(plan.image_build), text=True)
    if res.returncode != 0:
        raise HilError(f"'docker build' of {plan.build.image} failed with exit code "
                       f"{res.returncode}", f"see the output above; base image: {base}")
    plan.build.run(runner)
    if not any(plan.out_dir.glob("*.deb")):
        raise HilError(f"the board build produced no .deb in {plan.out_dir}",
                       "see the container's output above")
    return plan.out_dir


def build_emulated(*, repo: Path = REPO_ROOT, jobs: int = 2,
                   runner: Runner = subprocess.run) -> Path:
    """Build (or reuse) the twin's bzImage; progress goes to our stderr."""
    argv, env = emulated_command(repo, jobs)
    res = runner(argv, stdout=subprocess.PIPE, text=True, cwd=repo, env={**os.environ, **env})
    lines = (res.stdout or "").strip().splitlines()
    if res.returncode != 0 or not lines:
        raise HilError("kernel/build.sh emulated failed", "see its error and hint above")
    return Path(lines[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.build.kernel", description=__doc__)
    parser.add_argument("board", choices=["board", "emulated"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--base-image", default=None,
                        help=f"base of the board's build image (default {DEFAULT_BASE_IMAGE})")
    args = parser.parse_args(argv)
    try:
        if args.board == "board":
            path = build_board(jobs=args.jobs, base_image=args.base_image)
        else:
            path = build_emulated(jobs=args.jobs)
    except HilError as e:
        print(f"error: {e}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
