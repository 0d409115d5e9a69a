"""Builds in a container: one code path for the board's kernel, its firmware and the CI proof.

The lab board's builds run in a container so their userland matches the board's (Ubuntu)
or Dasharo's SDK. What must hold for every such build is the same, so it is written once
here and the recipes only name an image and a script:

* the repository is mounted read-only at ``/wpp``; the build can only write to its cache
  (``/cache``) and its output directory (``/out``);
* it runs as the calling user, so everything it writes stays ours;
* the script's last stdout line is the result's path inside the container; it is
  translated back to the host and must lie under ``/out`` or ``/cache``.

No image registry is reachable from the machines that run CI, so a builder image is made
locally from Debian packages: ``debootstrap`` lays out a Debian root with the build
dependencies, and ``docker import`` turns its tarball into an image. The tarball is cached
under ``$WPP_HIL_CACHE/docker/`` by the hash of its package list, so a second machine run
only imports it. The board builds keep their own base (Ubuntu, Dasharo's SDK); the base
is configurable, because CI can only make Debian.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hil.cache.keys import cache_root
from hil.core.errors import HilError, MissingToolError
from hil.core.runs import REPO_ROOT

C_REPO = "/wpp"
C_CACHE = "/cache"
C_OUT = "/out"
SUITE = "bookworm"
# What a build in the Debian builder needs: coreboot's host toolchain and the kernel's.
BUILDER_PACKAGES = (
    "acpica-tools", "bc", "bison", "build-essential", "ca-certificates", "cpio", "file",
    "flex", "gcc-multilib", "git", "kmod", "libelf-dev", "libpci-dev", "libssl-dev", "m4",
    "nasm", "patch", "pkg-config", "python3", "rsync", "xz-utils", "zlib1g-dev",
)

Runner = Callable[..., subprocess.CompletedProcess[str]]


def engine_problem(docker: str = "docker", runner: Runner = subprocess.run) -> str | None:
    """Why no Docker engine can be used here (None when one answers)."""
    if shutil.which(docker) is None:
        return f"the '{docker}' command is missing (apt-get install docker.io)"
    try:
        res = runner([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                     text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "'docker info' did not answer within 30 s"
    if res.returncode != 0 or not res.stdout.strip():
        lines = (res.stderr or "").strip().splitlines()
        return f"no Docker engine answers ({lines[-1] if lines else 'docker info failed'})"
    return None


def require_engine(docker: str = "docker", runner: Runner = subprocess.run,
                   instead: str = "") -> None:
    """Raise a HilError naming the cause and the fix unless a Docker engine answers.

    `instead` names what can be built without an engine, for the hint.
    """
    problem = engine_problem(docker, runner)
    if problem is None:
        return
    if "missing" in problem:
        raise MissingToolError(docker, "docker.io")
    raise HilError(problem, "start one ('systemctl start docker', or 'dockerd &' where no "
                            "init system runs), or build on a machine with a Docker engine"
                            + (f"; {instead}" if instead else ""))


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources"),
                  legacy: Path = Path("/etc/apt/sources.list")) -> str:
    """The machine's own Debian archive URI (never a host name written into the repo)."""
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    raise HilError("no Debian archive found in the machine's apt sources",
                   f"add one to {sources} (this machine must be Debian)")


def builder_key(packages: Sequence[str] = BUILDER_PACKAGES, suite: str = SUITE) -> str:
    """Cache key of the builder root: the suite and the package list."""
    text = "\n".join([suite, *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def builder_tag(packages: Sequence[str] = BUILDER_PACKAGES, suite: str = SUITE) -> str:
    return f"wpp-hil/builder:debian-{suite}-{builder_key(packages, suite)}"


def _run(argv: Sequence[str], runner: Runner, what: str, **kw: object) -> str:
    res = runner(list(argv), text=True, **kw)
    if res.returncode != 0:
        tail = "\n  ".join(((res.stderr or "") + (res.stdout or "")).strip().splitlines()[-12:])
        raise HilError(f"{what} failed (exit {res.returncode}):\n  {tail}",
                       f"run by hand to see everything: {' '.join(argv)}")
    return res.stdout or ""


def ensure_builder_image(*, docker: str = "docker", cache: Path | None = None,
                         runner: Runner = subprocess.run,
                         packages: Sequence[str] = BUILDER_PACKAGES,
                         suite: str = SUITE) -> str:
    """The Debian builder image's tag; made from Debian packages if the engine lacks it."""
    tag = builder_tag(packages, suite)
    if runner([docker, "image", "inspect", tag], capture_output=True,
              text=True).returncode == 0:
        return tag
    root = (cache or cache_root()) / "docker"
    tarball = root / f"builder-{suite}-{builder_key(packages, suite)}.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None:
            raise MissingToolError("debootstrap", "debootstrap")
        work = root / f"rootfs.{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"[container] debootstrap {suite} with {len(packages)} build packages "
              "(once, a few minutes)", file=sys.stderr, flush=True)
        try:
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
                  suite, str(work), debian_mirror()], runner, "debootstrap",
                 capture_output=True)
            _run(["tar", "-C", str(work), "--numeric-owner", "-cf", f"{tarball}.tmp", "."],
                 runner, "packing the builder root", capture_output=True)
            Path(f"{tarball}.tmp").rename(tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"[container] docker import {tarball.name} as {tag}", file=sys.stderr, flush=True)
    _run([docker, "import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
          str(tarball), tag], runner, "docker import", capture_output=True)
    return tag


@dataclass(frozen=True)
class ContainerBuild:
    """One build script run in a container under the shared contract (module docstring)."""

    image: str
    script: Sequence[str]  # argv inside the container, relative to the repository
    out: Path  # host directory mounted at /out
    cache: Path  # host directory mounted at /cache
    repo: Path = REPO_ROOT
    ro_mounts: tuple[tuple[Path, str], ...] = ()  # extra read-only (host, container) mounts
    env: tuple[tuple[str, str], ...] = ()
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    docker: str = "docker"

    def command(self) -> list[str]:
        argv = [self.docker, "run", "--rm", "--user", f"{self.uid}:{self.gid}",
                "--volume", f"{self.repo}:{C_REPO}:ro",
                "--volume", f"{self.cache}:{C_CACHE}",
                "--volume", f"{self.out}:{C_OUT}"]
        for host, inside in self.ro_mounts:
            argv += ["--volume", f"{host}:{inside}:ro"]
        for key, value in (("HOME", "/tmp"), ("WPP_HIL_CACHE", C_CACHE),
                           ("WPP_IN_CONTAINER", "1"), *self.env):
            argv += ["--env", f"{key}={value}"]
        argv += ["--workdir", C_REPO, self.image, "bash", *self.script]
        return argv

    def host_path(self, inside: str) -> Path:
        """The host path of a result the script printed (it must be under /out or /cache)."""
        for prefix, host in ((C_OUT, self.out), (C_CACHE, self.cache)):
            if inside == prefix or inside.startswith(prefix + "/"):
                return host / inside[len(prefix):].lstrip("/")
        raise HilError(f"the container build printed {inside!r}, outside {C_OUT} and {C_CACHE}",
                       "the build script must print its result's path last")

    def run(self, runner: Runner = subprocess.run) -> Path:
        """Run the build (its stderr shows progress here); return the result's host path."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        print("+ " + " ".join(self.command()), file=sys.stderr, flush=True)
        res = runner(self.command(), stdout=subprocess.PIPE, text=True)
        lines = (res.stdout or "").strip().splitlines()
        if res.returncode != 0 or not lines:
            raise HilError(f"the container build failed (exit {res.returncode})",
                           "see its output above")
        path = self.host_path(lines[-1].strip())
        if not path.exists():
            raise HilError(f"the container build reported {path}, which does not exist")
        return path


def twin_firmware_build(image: str, *, cache: Path | None = None,
                        repo: Path = REPO_ROOT) -> ContainerBuild:
    """The twin's coreboot (no payload) built in a container, the way the board's are.

    The pinned coreboot tree that the host fetched is mounted read-only: the container
    has no deb-src entry and needs no network.
    """
    root = cache or cache_root()
    work = root / "container" / "twin-firmware"
    return ContainerBuild(
        image=image, script=("firmware/build.sh", "emulated"), out=work / "out",
        cache=work / "cache", repo=repo,
        ro_mounts=((root / "coreboot-src", f"{C_CACHE}/coreboot-src"),))
