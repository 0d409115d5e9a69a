"""Clocks continue: a recreated process sees CLOCK_MONOTONIC and CLOCK_BOOTTIME go on
from their values at the power loss (issue 13).

Both clocks restart at every boot, so without help every deadline the process computed
from them lies in the new boot's future by the old uptime minus the new one: found on
the twin, a recreated redis-server kept keys with a 1 s expiry for 6 s and honoured
SIGTERM after 98 s. The PCB now carries both clocks as the process saw them, and
``wpp-recreate`` forks the process into a new time namespace whose offsets
(``/proc/<pid>/timens_offsets``) make them continue; the time it was down does not count.

``wpp-clockprobe`` sleeps to absolute CLOCK_MONOTONIC deadlines and has a thread sleeping to
absolute CLOCK_BOOTTIME ones. The old boot is kept up long enough (uptime > 60 s)
that a clock restarting at boot would stall it for tens of seconds.
"""

from __future__ import annotations

import re
from typing import Any

from counter_probe import DATA, kill_tracked

from hil.core.timeout import wait_for

PROBE = "/usr/bin/wpp-clockprobe"
ALLOW = "/sys/module/wpp/parameters/allow_threads"
LINE_RE = re.compile(r"^wpp-clockprobe: n=(\d+) pid=(\d+) mono_ns=(\d+) boot_ns=(\d+) "
                     r"late_ms=(-?\d+) bt=(\d+)$", re.M)


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def _lines(wpp: Any, prog: Any) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in m.groups()) for m in LINE_RE.finditer(wpp.output(prog))]


def _uptime(target: Any) -> float:
    return float(_sh(target, "cut -d' ' -f1 /proc/uptime").stdout.strip())


def test_clocks_continue_after_recreation(wpp: Any, target: Any) -> None:
    kill_tracked(target)
    _sh(target, f"mkdir -p {DATA}; echo 1 > {ALLOW}; echo eager > /sys/module/wpp/parameters/mode")
    wpp.out_dir = DATA
    prog = wpp.start(f"{PROBE} --period-ms 200", name="clock")
    wait_for(lambda: len(_lines(wpp, prog)) >= 3, 60, "clock probe lines")
    wait_for(lambda: _uptime(target) > 60, 90, "an old boot older than the next one will be")
    wpp.trigger()
    last = _lines(wpp, prog)[-1]
    old_uptime = _uptime(target)
    target.power_cut()
    target.boot()
    _sh(target, f"echo 1 > {ALLOW}")
    res = _sh(target, f"wpp-recreate {PROBE}", timeout=300, check=False)
    assert res.ok, res.stderr
    new_uptime = _uptime(target)
    assert new_uptime + 20 < old_uptime, (old_uptime, new_uptime)

    def after() -> list[tuple[int, ...]] | None:
        new = [ln for ln in _lines(wpp, prog) if ln[0] > last[0]]
        return new if len(new) >= 5 else None

    # a clock that restarted at boot would stall the probe for old - new uptime (> 20 s)
    new = wait_for(after, 10, "probe lines after recreation (its monotonic deadlines)")
    for n, ln in enumerate(new):
        assert ln[0] == last[0] + 1 + n
        assert ln[4] < 1000, f"n={ln[0]} woke {ln[4]} ms late"
    mono_gap = (new[0][2] - last[2]) / 1e9
    boot_gap = (new[0][3] - last[3]) / 1e9
    # continued where they stopped: neither back in time nor by the downtime ahead
    assert 0 < mono_gap < 5, mono_gap
    assert 0 < boot_gap < 5, boot_gap
    assert new[-1][5] > last[5], "the CLOCK_BOOTTIME thread did not wake after recreation"
    assert "clocks continue" in res.stdout, res.stdout
    _sh(target, f"cat /proc/{prog.pid}/timens_offsets")
    _sh(target, f"kill {prog.pid}", check=False)
    _sh(target, f"echo 0 > {ALLOW}")
