"""``hil recover``: bring back a board that does not boot (see `hil.lab.recovery`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core.runs import artifact_dir
from hil.core.target import Target
from hil.lab.recovery import ROUTES, recover


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recover", help="detect a board that does not boot, restore its last known-good ROM "
        "(SPI programmer in G3, or MSI's Flash BIOS button with the PiKVM's USB drive), "
        "verify it boots",
        description="Detects a board that does not boot (no firmware banner, no SSH), saves "
        "the PiKVM screen as evidence, restores the last known-good ROM by the inventory's "
        "firmware.recovery.routes, and verifies the board boots to its OS.")
    add_board(p)
    add_json(p)
    p.add_argument("--rom", type=Path, help="restore this ROM instead of the known-good one")
    p.add_argument("--route", choices=ROUTES, action="append",
                   help="only this route (repeatable; default: the inventory's order)")
    p.add_argument("--force", action="store_true",
                   help="restore even if the board boots")
    p.set_defaults(func=run)


def run(ctx: Context) -> int:
    from hil.core.parts import resolve

    target = Target(resolve(ctx.board))
    try:
        result = recover(target, rom=ctx.args.rom,
                         routes=tuple(ctx.args.route) if ctx.args.route else None,
                         evidence_dir=artifact_dir("recover"), force=ctx.args.force)
    finally:
        target.close()
    lines = []
    if result.healthy_at_start:
        lines.append(f"{target.board.name} boots to its OS: nothing to recover "
                     "(--force restores anyway)")
    else:
        lines.append(f"{target.board.name} did not boot: {result.cause}")
        if result.evidence:
            lines.append("evidence: " + ", ".join(sorted(result.evidence.values())))
        for a in result.attempts:
            lines.append(f"  [{'x' if a.ok else ' '}] {a.route:<4} {a.seconds:6.1f} s  "
                         f"{a.detail}")
        lines.append("recovered: boots to its OS again" if result.recovered else
                     "NOT recovered: every route was tried; see the evidence and the attempts")
    ctx.emit(result.to_json(), "\n".join(lines))
    return 0 if result.recovered else 1
