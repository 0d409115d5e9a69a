"""Batched mode: resetting the firmware (magic 20) while the tracked process faults.

Issue 13: magic 20 walked the page tables with ``wt_batch_lock`` held, and the walk takes
each page table's PTE lock; the fault and zap hooks are called with a PTE lock held and
then take ``wt_batch_lock``: the opposite order, a deadlock as soon as a fault waits for the
batch lock on a page table the walk has still to visit. The walk now collects the pages
into a private array without driver locks and queues them afterwards.

``wpp-synth`` maps, fills (one fault per page, new page tables every cycle) and unmaps
8 MiB in a loop while the trigger resets the firmware 100 times; then the firmware's
lists must still equal /proc (``wpp-status --compare``).
"""

from __future__ import annotations

from typing import Any

from counter_probe import kill_tracked


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def test_reset_while_faulting_in_batched_mode(wpp: Any, target: Any) -> None:
    kill_tracked(target)
    _sh(target, "echo batched > /sys/module/wpp/parameters/mode")
    prog = wpp.start("/usr/bin/wpp-synth --size-mib 8 --cycles 1000000 --quiet", name="lock")
    try:
        res = _sh(target, "for i in $(seq 1 100); do echo 20 > /dev/wpp-trigger || exit 1; "
                          "done; echo resets-done", timeout=300)
        assert "resets-done" in res.stdout
        assert wpp.alive(prog), "the faulting process died"
        _sh(target, f"kill -STOP {prog.pid}; sleep 0.3; echo 70 > /dev/wpp-trigger")
        res = _sh(target, f"wpp-status --compare {prog.pid}", check=False)
        assert res.ok, res.stdout[-600:] + res.stderr[-300:]
    finally:
        _sh(target, f"kill -9 {prog.pid} 2>/dev/null; true", check=False)
