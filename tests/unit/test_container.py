"""hil.build.container: the one contract for builds in containers (mounts, user, result path)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hil.build import container as c
from hil.core.errors import HilError


def spec(tmp_path: Path) -> c.ContainerBuild:
    return c.ContainerBuild(image="img:1", script=("kernel/build.sh", "x"), out=tmp_path / "o",
                            cache=tmp_path / "c", repo=Path("/r"),
                            ro_mounts=((Path("/h/tar"), "/usr/src/t.tar.xz"),),
                            env=(("JOBS", "3"),), uid=1000, gid=1001)


def test_command_mounts_the_repo_read_only_and_runs_as_the_caller(tmp_path: Path) -> None:
    argv = spec(tmp_path).command()
    assert argv[:5] == ["docker", "run", "--rm", "--user", "1000:1001"]
    vols = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert vols == ["/r:/wpp:ro", f"{tmp_path / 'c'}:/cache", f"{tmp_path / 'o'}:/out",
                    "/h/tar:/usr/src/t.tar.xz:ro"]
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert envs == ["HOME=/tmp", "WPP_HIL_CACHE=/cache", "WPP_IN_CONTAINER=1", "JOBS=3"]
    assert argv[-4:] == ["img:1", "bash", "kernel/build.sh", "x"]


def test_result_paths_map_back_and_nothing_else_is_accepted(tmp_path: Path) -> None:
    s = spec(tmp_path)
    assert s.host_path("/out/a.deb") == tmp_path / "o" / "a.deb"
    assert s.host_path("/cache/firmware/x/coreboot.rom") == \
        tmp_path / "c" / "firmware" / "x" / "coreboot.rom"
    for bad in ("/outside/x", "/wpp/firmware/x", "/output/x"):
        with pytest.raises(HilError, match="outside"):
            s.host_path(bad)


def test_run_returns_the_host_path_of_the_last_line(tmp_path: Path) -> None:
    s = spec(tmp_path)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "k.deb").write_bytes(b"x")

    def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "progress\n/out/k.deb\n", "")

    assert s.run(runner) == tmp_path / "o" / "k.deb"


def test_a_failed_build_is_a_hil_error(tmp_path: Path) -> None:
    def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 2, "", "")

    with pytest.raises(HilError, match="exit 2"):
        spec(tmp_path).run(runner)


def test_engine_problem_names_the_engines_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c.shutil, "which", lambda name: "/usr/bin/docker")

    def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "Cannot connect to the Docker daemon")

    problem = c.engine_problem(runner=runner)
    assert problem is not None and "Cannot connect to the Docker daemon" in problem
    with pytest.raises(HilError) as e:
        c.require_engine(runner=runner)
    assert e.value.hint and "dockerd" in e.value.hint


def test_mirror_comes_from_the_machines_sources(tmp_path: Path) -> None:
    src = tmp_path / "debian.sources"
    src.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
                   "Types: deb\nURIs: http://mirror.example/debian-security\n")
    assert c.debian_mirror(src, tmp_path / "none") == "http://mirror.example/debian"
    with pytest.raises(HilError, match="no Debian archive"):
        c.debian_mirror(tmp_path / "none", tmp_path / "none2")


def test_builder_key_follows_the_package_list() -> None:
    assert c.builder_key(("a", "b")) == c.builder_key(("b", "a"))
    assert c.builder_key(("a", "b")) != c.builder_key(("a", "c"))
    assert c.builder_tag().startswith("wpp-hil/builder:debian-bookworm-")
