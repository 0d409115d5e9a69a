"""``make demo``: a process survives a power cut on the emulated board, narrated.

Builds or reuses the twin's artifacts, starts a private twin (its own state directory
and free loopback ports, so it never collides with a twin a user runs by hand), boots
it, runs ``wpp-counter`` under WPP, cuts mains mid-count, boots again, recreates the
process and shows it continuing, then prints the phase table. The twin is stopped at
the end; its logs stay under ``runs/<timestamp>/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hil.build import twin as artifacts
from hil.core.inventory import Board
from hil.wpp.experiment import CycleReport, CycleRunner, format_table
from hil.wpp.snapshot import inspect as inspect_snapshot


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run_demo(board: Board, mode: str = "eager", cycles: int = 1) -> list[CycleReport]:
    from hil.emulated.private import private_twin

    say("building or reusing the twin's kernel, guest image and WPP firmware")
    rom = artifacts.twin_rom()
    say("starting the emulated board (QEMU q35 + coreboot with the WPP SMI handler)")
    with private_twin(board, rom, "demo") as target:
        timings = target.boot()
        say(f"booted: firmware banner after {timings.banner_s or 0:.1f} s, "
            f"SSH after {timings.ssh_s or 0:.1f} s")
        pdev = Path(target.twin.pdev)
        runner = CycleRunner(target, mode=mode, on_step=say,
                             after_cut=lambda: _show_snapshot(pdev))
        first = runner.start()
        say(f"wpp-counter runs tracked ({mode} mode): {first.raw}")
        reports = []
        for i in range(1, cycles + 1):
            report = runner.cycle(i)
            reports.append(report)
            if not report.ok:
                break
        print()
        print(format_table(reports))
        for r in reports:
            for check, ok in r.checks.items():
                print(f"  [{'x' if ok else ' '}] {check}")
            if r.error:
                print(f"  cycle {r.cycle} failed: {r.error}")
        target.capture("demo")
        return reports


def _show_snapshot(pdev: Path) -> None:
    try:
        report = inspect_snapshot(pdev)
    except Exception as exc:  # the inspector's own errors are informative enough
        say(f"snapshot inspector: {exc}")
        return
    say("persistent device after the cut (hil snapshot inspect):")
    for line in report.format_text().splitlines():
        print(f"    {line}")


def main(board: Board, mode: str, cycles: int) -> int:
    reports = run_demo(board, mode, cycles)
    ok = bool(reports) and all(r.ok for r in reports)
    print("\nthe process survived the power cut" if ok
          else "\nthe demo did not complete: see the table and runs/ for logs", file=sys.stderr)
    return 0 if ok else 1
