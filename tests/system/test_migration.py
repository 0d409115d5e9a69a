"""Compaction running during the power-loss procedure (issue 12).

``test_pagetable_check.py`` migrates a stopped probe's pages before the trigger. Here
compaction runs in a loop *while* the trigger runs, so the check's walk can meet pages in
the middle of a migration (migration entries, not present ptes): it must wait for them
(``migration_waits`` in ``/sys/kernel/wpp/check``) instead of dropping them, and the
pages it then pins cannot be migrated before PERSIST has copied them. In every mode the
recreated probe must find its 32 MiB exactly as they were.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from counter_probe import DATA, kill_tracked

from hil.core.timeout import wait_for

PROBE = "/usr/bin/wpp-mmprobe"
LINE_RE = re.compile(r"^wpp-mmprobe: n=(\d+) pid=\d+ case=compact check=(\w+)(.*)$", re.M)
COMPACT_LOOP = "/tmp/wpp-compact-loop.pid"


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def _lines(wpp: Any, prog: Any) -> list[tuple[int, str, str]]:
    return [(int(m[1]), m[2], m[0]) for m in LINE_RE.finditer(wpp.output(prog))]


def _check_stats(target: Any) -> dict[str, int]:
    text = _sh(target, "cat /sys/kernel/wpp/check").stdout
    return {k: int(v) for k, v in (ln.split() for ln in text.splitlines() if " " in ln)}


@pytest.mark.parametrize("mode", ["eager", "batched", "lazy"])
def test_compaction_during_the_power_loss(wpp: Any, target: Any, mode: str) -> None:
    kill_tracked(target)
    _sh(target, f"mkdir -p {DATA}; rm -f {DATA}/wpp-mig.out; "
                f"echo {mode} > /sys/module/wpp/parameters/mode")
    wpp.out_dir = DATA
    prog = wpp.start(f"{PROBE} --case compact --period-ms 200", name="mig")
    wait_for(lambda: len(_lines(wpp, prog)) >= 2, 240, "wpp-mmprobe compact ready")
    assert all(ln[1] == "ok" for ln in _lines(wpp, prog))
    before = _check_stats(target)
    _sh(target, "setsid sh -c 'while :; do echo 1 > /proc/sys/vm/compact_memory; done' "
                f"</dev/null >/dev/null 2>&1 & echo $! > {COMPACT_LOOP}")
    try:
        last = _lines(wpp, prog)[-1][0]
        wpp.trigger()
    finally:
        _sh(target, f"kill $(cat {COMPACT_LOOP}) 2>/dev/null; true", check=False)
    after = _check_stats(target)
    log = _sh(target, "dmesg | grep 'wpp: power loss'").stdout
    assert f"pid {prog.pid} persisted" in log, log[-800:]
    assert after["failed"] == before["failed"], log[-800:]
    target.power_cut()

    target.boot()
    _sh(target, f"echo {mode} > /sys/module/wpp/parameters/mode")
    res = _sh(target, f"wpp-recreate {PROBE}", timeout=300, check=False)
    assert res.ok, res.stderr.strip() or res.stdout.strip()

    def two_after() -> list[tuple[int, str, str]] | None:
        new = [ln for ln in _lines(wpp, prog) if ln[0] > last]
        return new if len(new) >= 2 else None

    new = wait_for(two_after, 60, "two probe lines after recreation")
    _sh(target, f"kill {prog.pid}", check=False)
    assert new[0][0] == last + 1, new
    assert all(ln[1] == "ok" for ln in new), f"recreated memory differs: {new[0][2]}"
    print(f"compaction during the trigger ({mode}): {after['last_pages']} pages, "
          f"{after['migration_waits'] - before['migration_waits']} migration waits, "
          f"check {after['last_us']} us")
