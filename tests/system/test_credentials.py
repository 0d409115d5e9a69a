"""A recreated process is its user again, and its files are opened as that user.

Found on the twin (issue 13): a counter running as uid 1000 was recreated with uid 0, and
``wpp-recreate`` reopened its files by path as root; while the machine was off its log
file was replaced by a symlink to a root-only file (0600) and the recreated counter
appended to that file (7 -> 3136 bytes). Now the PCB carries the credentials (uids, gids,
supplementary groups, capabilities), the recreator looks up and opens every path under
them, and the process gets them back. Recreation is root-only (``/dev/wpp-recreate``).
"""

from __future__ import annotations

import re
from typing import Any

from counter_probe import COUNTER, DATA, kill_tracked, parse_lines

from hil.core.timeout import wait_for

UID, GID, GROUPS = 1000, 1000, (1001, 1002)
DIR = f"{DATA}/u{UID}"
SECRET = f"{DATA}/root-secret"


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def _ids(target: Any, pid: int) -> dict[str, list[str]]:
    text = _sh(target, f"cat /proc/{pid}/status").stdout
    out = {}
    for key in ("Uid", "Gid", "Groups", "CapEff", "CapPrm"):
        m = re.search(rf"^{key}:\s*(.*)$", text, re.M)
        out[key] = m[1].split() if m else []
    return out


def test_recreated_as_its_user_files_opened_as_user(wpp: Any, target: Any) -> None:
    kill_tracked(target)
    _sh(target, "echo eager > /sys/module/wpp/parameters/mode")
    _sh(target, f"rm -rf {DIR} {SECRET}; mkdir -p {DIR}; printf 'secret\\n' > {SECRET}; "
                f"chmod 600 {SECRET}; touch {DIR}/wpp-cred.out; chown -R {UID}:{GID} {DIR}; "
                "sync")  # the secret is no file of the process: on disk before the cut
    wpp.out_dir = DIR
    groups = ",".join(str(g) for g in GROUPS)
    inner = (f"cd {DIR} && exec wpp-runas {UID} {GID},{groups} {COUNTER} --period-ms 200 "
             f"--buffer-mib 1 --log-file {DIR}/c.log --state-file {DIR}/c.state")
    prog = wpp.start(f"sh -c '{inner}'", name="cred")
    lines = wait_for(lambda: parse_lines(wpp.output(prog))[2:] or None, 60,
                     f"counter lines: {wpp.output(prog)[-300:]}")
    ids = _ids(target, prog.pid)
    assert ids["Uid"] == [str(UID)] * 4 and ids["Groups"] == [str(g) for g in GROUPS], ids

    wpp.trigger()
    last = parse_lines(wpp.output(prog))[-1]
    target.power_cut()
    target.boot()

    # while it was off: its log file became a symlink to a root-only file
    _sh(target, f"mv {DIR}/c.log {DIR}/c.log.orig && ln -s {SECRET} {DIR}/c.log && "
                f"chown -h {UID}:{GID} {DIR}/c.log")
    res = _sh(target, f"wpp-recreate {COUNTER}", timeout=300, check=False)
    assert not res.ok, f"recreated through the swapped symlink: {res.stdout}"
    assert "c.log" in res.stderr and "not accessible" in res.stderr, res.stderr
    assert _sh(target, f"stat -c %s {SECRET}").stdout.strip() == "7", "the secret was written"

    # another user cannot recreate (the device is root's)
    res = _sh(target, f"wpp-runas {UID} {GID} wpp-recreate {COUNTER}", check=False)
    assert not res.ok and "wpp-recreate: error:" in res.stderr, res.stderr

    # the file back: recreated, as uid 1000 with its groups and no capabilities
    _sh(target, f"rm {DIR}/c.log && mv {DIR}/c.log.orig {DIR}/c.log")
    res = _sh(target, f"wpp-recreate {COUNTER}", timeout=300, check=False)
    assert res.ok, res.stderr
    ids = _ids(target, prog.pid)
    assert ids["Uid"] == [str(UID)] * 4, ids
    assert ids["Gid"] == [str(GID)] * 4, ids
    assert ids["Groups"] == [str(g) for g in GROUPS], ids
    assert ids["CapEff"] == ["0000000000000000"] and ids["CapPrm"] == ["0000000000000000"], ids
    def after() -> list[Any] | None:
        new = [ln for ln in parse_lines(wpp.output(prog)) if ln.n > last.n]
        return new if len(new) >= 2 else None

    new = wait_for(after, 60, "counter lines after recreation")
    assert new[0].n == last.n + 1, (last, new[0])
    assert all(ln.checks["buf"] == "ok" and ln.checks["fd"] == "ok" for ln in new), new
    assert _sh(target, f"stat -c %s {SECRET}").stdout.strip() == "7"
    assert lines  # the run before the power loss printed lines
    _sh(target, f"kill {prog.pid}", check=False)
