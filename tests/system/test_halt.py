"""The halt holds: nothing resumes the tracked process between the trigger and PERSIST.

The power-loss procedure stops the process with SIGSTOP, writes its files back, checks its
page tables and captures its PCB, then has the firmware copy its memory. Any process of
the same user could send SIGCONT in between (issue 13): the process ran on while it was
being captured, so registers, memory and files could come from different moments. Now
SIGCONT is dropped for it from the trigger until it is killed (patch 0004), and PERSIST
runs only after re-checking under its siglock that every thread is still stopped.

The test floods the counter with SIGCONT (a busy shell loop) across the whole procedure;
the counter iterates every 2 ms, so a resumed process would print lines after its capture
and the recreated one would not continue at exactly the last printed n + 1.
"""

from __future__ import annotations

from typing import Any

from counter_probe import Probe


def test_sigcont_during_power_loss_is_dropped(wpp: Any) -> None:
    probe = Probe(wpp, mode="eager", buffer_mib=4, period_ms=2, name="halt")
    storm = probe.run(f"sh -c 'while kill -CONT {probe.pid} 2>/dev/null; do :; done' "
                      f"> /dev/null 2>&1 & echo $!").stdout.split()[-1]
    try:
        probe.wpp.trigger()
        log = probe.run("dmesg | grep 'wpp: power loss' | tail -8").stdout
    finally:
        probe.run(f"kill {storm} 2>/dev/null; true")
    probe.note_last()
    probe.target.power_cut()
    assert f"pid {probe.pid} persisted" in log, log
    assert "SIGCONT dropped" in log, f"no SIGCONT reached the halt: {log}"
    probe.boot()
    probe.assert_continues(probe.recreate())
    probe.stop()
