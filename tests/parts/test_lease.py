"""Board leases (hil.lab.lease) on their real stores: a local directory and a host over real SSH.

Two runs must never drive one board at once. These tests race real processes for one
lease, break stale ones, and take leases over SSH on a loopback sshd as a PiKVM/RTE host
would hold them.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sshd_fixture
from sshd_fixture import SshServer

from hil.cli.lease_cmd import needs_lease
from hil.cli.main import build_parser
from hil.drivers.runner import LocalRunner, SshRunner
from hil.drivers.shell import Shell
from hil.lab import lease as L

sshd = sshd_fixture.sshd


def store(tmp_path: Path) -> L.LeaseStore:
    return L.LeaseStore(LocalRunner(), str(tmp_path / "leases"))


def _race(directory: str, n: int, results: multiprocessing.Queue) -> None:  # child
    st = L.LeaseStore(LocalRunner(), directory)
    mine = L.new_lease("msi-z690", purpose=f"racer {n}")
    held = st.try_take(mine)
    results.put((n, held is None, mine.token))


def test_of_many_racing_runs_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "leases"), n, q)) for n in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [q.get(timeout=5) for _ in procs]
    winners = [r for r in results if r[1]]
    assert len(winners) == 1, results
    assert store(tmp_path).read("msi-z690").token == winners[0][2]  # type: ignore[union-attr]


def test_a_second_run_is_refused_with_the_owner_named(tmp_path: Path) -> None:
    st = store(tmp_path)
    first = L.take(st, L.new_lease("msi-z690", purpose="nightly"))
    with pytest.raises(L.LeaseHeld) as e:
        L.take(st, L.new_lease("msi-z690", purpose="laptop"))
    assert f"pid {os.getpid()}" in str(e.value) and "(nightly)" in str(e.value)
    assert e.value.hint and "hil lease break --board msi-z690" in e.value.hint
    assert st.release("msi-z690", first.token)
    L.take(st, L.new_lease("msi-z690"))  # free again


def test_only_the_owner_releases(tmp_path: Path) -> None:
    st = store(tmp_path)
    lease = L.take(st, L.new_lease("b"))
    assert not st.release("b", "0123456789abcdef")
    assert st.read("b") == lease
    assert st.release("b", lease.token) and st.read("b") is None


def test_expired_and_dead_owner_leases_are_broken_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = store(tmp_path)
    old = dataclasses.replace(L.new_lease("b"), expires=time.time() - 60)
    assert st.try_take(old) is None
    new = L.take(st, L.new_lease("b"))
    assert "breaking b's lease" in capsys.readouterr().out and "it expired" in str(
        old.stale_reason())
    assert st.read("b") == new
    st.release("b", new.token)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = dataclasses.replace(L.new_lease("b"), pid=dead.pid)
    assert st.try_take(ghost) is None
    assert "is gone" in (ghost.stale_reason() or "")
    assert L.take(st, L.new_lease("b")).token != ghost.token


def test_breaking_never_removes_a_lease_taken_meanwhile(tmp_path: Path) -> None:
    st = store(tmp_path)
    judged = dataclasses.replace(L.new_lease("b"), expires=time.time() - 1)
    current = L.take(st, L.new_lease("b"))  # somebody took it after we read `judged`
    assert not st.break_(judged)
    assert st.read("b") == current


def test_held_is_reentrant_through_the_environment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from hil.core.inventory import load

    board = load(None).board("emulated")
    board = board.replace(emulated=dataclasses.replace(board.emulated,  # type: ignore[arg-type]
                                                       state_dir=tmp_path / "twin"))
    monkeypatch.delenv(L.ENV, raising=False)
    with L.held(board, "outer") as outer:
        assert outer is not None and os.environ[L.ENV] == f"emulated:{outer.token}"
        with L.held(board, "inner (a child of the same run)") as inner:
            assert inner == outer
        # a different run (no inherited token) is refused
        monkeypatch.setenv(L.ENV, "emulated:feedfeedfeedfeed")
        with pytest.raises(L.LeaseHeld), L.held(board, "intruder"):
            pass
        monkeypatch.setenv(L.ENV, f"emulated:{outer.token}")
    assert L.ENV not in os.environ
    assert L.store_for(board).read("emulated") is None  # released at the end


def test_leases_over_ssh_on_the_programmer_host(sshd: SshServer, tmp_path: Path) -> None:
    remote_dir = str(tmp_path / "rte" / "leases")
    with Shell(**sshd.shell_kwargs()) as a, Shell(**sshd.shell_kwargs()) as b:
        laptop = L.LeaseStore(SshRunner(a), remote_dir)
        nightly = L.LeaseStore(SshRunner(b), remote_dir)
        mine = L.take(nightly, dataclasses.replace(L.new_lease("msi-z690"), host="runner-1"))
        with pytest.raises(L.LeaseHeld, match="runner-1"):
            L.take(laptop, dataclasses.replace(L.new_lease("msi-z690"), host="laptop"))
        assert laptop.read("msi-z690") == mine
        assert nightly.release("msi-z690", mine.token)
        L.take(laptop, L.new_lease("msi-z690"))
    assert (Path(remote_dir) / "msi-z690.lease").is_file()


def test_an_unwritable_store_names_the_fix(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "leases").write_text("a file, not a directory")
    with pytest.raises(L.HilError) as e:
        L.take(L.LeaseStore(LocalRunner(), str(ro / "leases")), L.new_lease("b"))
    assert e.value.hint and "writable" in e.value.hint


def test_verbs_that_act_on_a_board_are_refused_while_another_run_holds_it(
        tmp_path: Path) -> None:
    """`hil lease take` in one shell; `hil power on` from another run names the owner."""
    env = {**os.environ, "WPP_HIL_CACHE": str(tmp_path)}
    env.pop(L.ENV, None)
    hil = [sys.executable, "-m", "hil.cli.main"]
    took = subprocess.run([*hil, "lease", "take", "--board", "emulated", "--purpose",
                           "debugging", "--json"], env=env, capture_output=True, text=True,
                          check=False)
    assert took.returncode == 0, took.stderr
    token = json.loads(took.stdout)["token"]
    # owned by the shell that ran it (here: this pytest process), so it is live
    for argv in (["power", "on"], ["flash", "probe"], ["ssh", "--", "true"]):
        res = subprocess.run([*hil, *argv, "--board", "emulated"], env=env,
                             capture_output=True, text=True, check=False, timeout=60)
        assert res.returncode == 1, (argv, res.stderr)
        assert f"leased by {getpass.getuser()}@" in res.stderr and "(debugging)" in res.stderr
    # looking needs no lease
    parser = build_parser()
    assert not needs_lease(parser.parse_args(["power", "status"]))
    assert needs_lease(parser.parse_args(["power", "cut"]))
    assert not needs_lease(parser.parse_args(["lease", "status"]))
    # the holder's own commands use its lease
    mine = subprocess.run([*hil, "lease", "status", "--board", "emulated"],
                          env={**env, L.ENV: f"emulated:{token}"}, capture_output=True,
                          text=True, check=True)
    assert "(debugging)" in mine.stdout
    rel = subprocess.run([*hil, "lease", "release", "--board", "emulated", "--token", token],
                         env=env, capture_output=True, text=True, check=False)
    assert rel.returncode == 0 and "released" in rel.stdout


def test_take_defaults_to_an_hour() -> None:
    args = build_parser().parse_args(["lease", "take"])
    assert args.ttl == 3600.0
    assert build_parser().parse_args(["lease", "take", "--for", "2.5"]).ttl == 150.0


def test_a_bench_on_a_private_twin_needs_no_lease() -> None:
    """`hil bench` and `hil demo` run on private twins: a held board lease must not stop them
    (the CLI-level lease is for verbs that drive the shared board)."""
    parser = build_parser()
    assert not needs_lease(parser.parse_args(["bench", "--quick"]))
    assert not needs_lease(parser.parse_args(["demo"]))
    assert needs_lease(parser.parse_args(["cycle"]))
