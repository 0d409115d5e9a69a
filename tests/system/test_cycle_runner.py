"""`CycleRunner` (what ``hil cycle``, ``hil demo`` and the bench run) on the target.

The suite's own cases drive the counter through `counter_probe.Probe`; this one runs the
experiment exactly as the CLI does, so its phases, its continuation checks and its
report are exercised on the twin by pytest, not only by ``hil bench --quick``.
"""

from __future__ import annotations

from typing import Any

from counter_probe import DATA, kill_tracked

from hil.wpp.experiment import CycleRunner, failed_checks


def test_cycle_runner_persists_cuts_and_continues(target: Any) -> None:
    kill_tracked(target)
    runner = CycleRunner(target, mode="eager", data_dir=f"{DATA}/cycle", run_s=1.0)
    first = runner.start()
    assert first.n >= 1 and first.healthy, first.raw
    report = runner.cycle(1)
    assert report.error is None, report.error
    assert report.before is not None and report.after is not None
    assert report.after.n == report.before.n + 1
    assert not failed_checks(report.checks), (report.checks, report.after.raw)
    assert report.ok
    assert [p.name for p in report.phases] == ["run", "persist", "power cut", "boot",
                                               "recreate", "continue"]
    assert all(p.wall_s > 0 for p in report.phases)
    assert report.to_json()["ok"] is True
    kill_tracked(target)
