"""hil.build.kernel: the commands for both boards, Docker detection, cache reuse."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hil.build import container
from hil.build import kernel as bk
from hil.core.errors import HilError, MissingToolError

REPO = bk.REPO_ROOT


class FakeRunner:
    """Records commands; answers from a table of (argv prefix -> CompletedProcess)."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]] | None = None):
        self.answers = answers or {}
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        for prefix, (rc, out, err) in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                return subprocess.CompletedProcess(argv, rc, out, err)
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_emulated_command_runs_the_script() -> None:
    argv, env = bk.emulated_command(REPO, jobs=2)
    assert argv == ["bash", str(REPO / "kernel/build.sh"), "emulated"]
    assert env == {"JOBS": "2"}


def test_pinned_version_matches_the_script() -> None:
    text = (REPO / "kernel/source.sh").read_text()
    assert f'PINNED_VERSION="{bk.pinned_version(REPO)}"' in text


TARBALL = Path("/c/kernel/source/6.1.192-3/linux-source-6.1.tar.xz")


def test_board_plan_commands(tmp_path: Path) -> None:
    plan = bk.board_plan("abc123", TARBALL, repo=REPO, cache=tmp_path, jobs=3, uid=1000,
                         gid=1001)
    assert plan.out_dir == tmp_path / "kernel" / "out" / "board-abc123"
    build, run = plan.commands
    tag = "wpp-hil/kernel-board:ubuntu-22.04"
    assert build == ("docker", "build", "--tag", tag, "--build-arg", "BASE=ubuntu:22.04",
                     "--file", str(REPO / "kernel/config/board.Dockerfile"),
                     str(REPO / "kernel/config"))
    assert run[:5] == ("docker", "run", "--rm", "--user", "1000:1001")
    vols = [run[i + 1] for i, a in enumerate(run) if a == "--volume"]
    assert f"{REPO}:/wpp:ro" in vols
    # the fetched tarball, never the host's installed package
    assert f"{TARBALL}:/usr/src/linux-source-6.1.tar.xz:ro" in vols
    assert f"{plan.out_dir}:/out" in vols
    assert f"{tmp_path / 'kernel' / 'board-cache'}:/cache" in vols
    envs = [run[i + 1] for i, a in enumerate(run) if a == "--env"]
    assert "JOBS=3" in envs and "WPP_IN_CONTAINER=1" in envs
    assert "WPP_SOURCE_VERSION=6.1.192-3" in envs
    assert run[-6:] == (tag, "bash", "kernel/build.sh", "board-in-container", "/out",
                        "/cache/work-board")
    assert Path(REPO / "kernel/config/board.Dockerfile").is_file()


def test_board_base_image_is_configurable(tmp_path: Path) -> None:
    plan = bk.board_plan("abc", TARBALL, repo=REPO, cache=tmp_path,
                         base_image="wpp-hil/builder:debian-bookworm-1")
    assert "BASE=wpp-hil/builder:debian-bookworm-1" in plan.image_build
    assert plan.build.image == "wpp-hil/kernel-board:wpp-hil-builder-debian-bookworm-1"
    assert "ARG BASE=ubuntu:22.04" in (REPO / "kernel/config/board.Dockerfile").read_text()


def test_check_docker_without_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container.shutil, "which", lambda name: "/usr/bin/docker")
    runner = FakeRunner({("docker", "info"): (1, "", "Cannot connect to the Docker daemon")})
    with pytest.raises(HilError) as e:
        bk.check_docker(runner=runner)
    assert "no Docker engine" in str(e.value)
    assert "Cannot connect" in str(e.value)
    assert e.value.hint and "kernel/build.sh emulated" in e.value.hint


def test_check_docker_without_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError):
        bk.check_docker(runner=FakeRunner())


def test_check_docker_with_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container.shutil, "which", lambda name: "/usr/bin/docker")
    runner = FakeRunner({("docker", "info"): (0, "24.0.7\n", "")})
    bk.check_docker(runner=runner)  # an engine that answers passes the check
    assert [c[:2] for c in runner.calls] == [["docker", "info"]]  # asked the engine itself


def test_build_board_runs_build_then_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container.shutil, "which", lambda name: "/usr/bin/docker")
    runner = FakeRunner({("bash", str(REPO / "kernel/source.sh")): (0, f"{TARBALL}\n", ""),
                         ("bash",): (0, "feedbeef\n", ""), ("docker", "info"): (0, "24\n", "")})
    out = tmp_path / "kernel" / "out" / "board-feedbeef"

    def fake(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        res = runner(argv, **kw)
        if argv[:2] == ["docker", "run"]:
            (out / "linux-image-6.1.192-wpp_1_amd64.deb").write_bytes(b"x")
            return subprocess.CompletedProcess(argv, 0, "/out\n", "")
        return res

    assert bk.build_board(cache=tmp_path, runner=fake) == out
    kinds = [c[:2] for c in runner.calls]
    assert kinds == [["bash", str(REPO / "kernel/build.sh")], ["docker", "info"],
                     ["bash", str(REPO / "kernel/source.sh")], ["docker", "build"],
                     ["docker", "run"]]
    # warm: nothing but the hash
    runner.calls.clear()
    assert bk.build_board(cache=tmp_path, runner=fake) == out
    assert [c[:2] for c in runner.calls] == [["bash", str(REPO / "kernel/build.sh")]]


def test_build_board_failure_is_a_hil_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container.shutil, "which", lambda name: "/usr/bin/docker")
    runner = FakeRunner({("bash", str(REPO / "kernel/source.sh")): (0, f"{TARBALL}\n", ""),
                         ("bash",): (0, "cafe\n", ""), ("docker", "info"): (0, "24\n", ""),
                         ("docker", "run"): (2, "", "")})
    with pytest.raises(HilError, match="exit 2"):
        bk.build_board(cache=tmp_path, runner=runner)


def test_real_hash_is_stable_and_target_specific() -> None:
    a = bk.input_hash(REPO, "board")
    assert a == bk.input_hash(REPO, "board")
    assert a != bk.input_hash(REPO, "emulated")
    assert len(a) == 16 and int(a, 16) >= 0


def test_main_reports_missing_engine(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kw: Any) -> Path:
        raise HilError("no Docker engine is running (x)", "use a machine with Docker")

    monkeypatch.setattr(bk, "build_board", refuse)
    assert bk.main(["board"]) == 1
    err = capsys.readouterr().err
    assert "error: no Docker engine is running" in err and "hint: use a machine" in err
