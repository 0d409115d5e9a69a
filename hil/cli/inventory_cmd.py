"""``hil inventory check``: validate inventory.yaml and summarise boards without secrets."""

from __future__ import annotations

import argparse

from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "inventory", "validate and summarise the inventory")
    c = s.add_parser("check", help="validate inventory.yaml; print a summary (no secrets)")
    add_board(c)
    add_json(c)
    c.set_defaults(func=check)


def check(ctx: Context) -> int:
    inv = ctx.inventory
    names = [ctx.args.board] if ctx.args.board else sorted(inv.boards)
    summaries = [inv.board(n).summary() for n in names]
    if ctx.json:
        ctx.emit({"inventory": str(inv.path), "default_board": inv.default_board,
                  "boards": summaries})
        return 0
    print(f"inventory {inv.path}: OK ({len(inv.boards)} boards, default {inv.default_board})")
    for s in summaries:
        print()
        ctx.emit(s)
    return 0
