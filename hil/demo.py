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

from hil import artifacts
from hil.cache import cache_root
from hil.cycle import CycleReport, CycleRunner, format_table
from hil.inventory import Board
from hil.snapshot import inspect as inspect_snapshot
from hil.target import Target


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run_demo(board: Board, mode: str = "eager", cycles: int = 1) -> list[CycleReport]:
    from hil.emulated import twin

    say("building or reusing the twin's kernel, guest image and WPP firmware")
    rom = artifacts.twin_rom()
    state = cache_root() / "twins" / "demo"
    twin.down(board, state=state)
    say("starting the emulated board (QEMU q35 + coreboot with the WPP SMI handler)")
    running = twin.up(board, state=state, use_free_ports=True, rom=rom, stop_at_exit=True)
    target = Target(running)
    try:
        timings = target.boot()
        say(f"booted: firmware banner after {timings.banner_s or 0:.1f} s, "
            f"SSH after {timings.ssh_s or 0:.1f} s")
        pdev = Path(target.pdev_path)
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
    finally:
        target.close()
        twin.down(board, state=state)


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
