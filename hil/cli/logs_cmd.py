"""``hil logs cbmem``: the firmware console from the running OS, optionally as wpp: events."""

from __future__ import annotations

import argparse

from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json
from hil.core import parts
from hil.drivers.cbmem import read_cbmem


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "logs", "firmware logs from the running OS")
    c = s.add_parser("cbmem", help="print 'cbmem -c' (all boots kept in the buffer)")
    add_board(c)
    add_json(c)
    c.add_argument("--wpp", action="store_true", help="only the firmware's wpp: events, parsed")
    c.add_argument("--last-boot", action="store_true", help="only the last boot (cbmem -1)")
    c.set_defaults(func=cbmem)


def cbmem(ctx: Context) -> int:
    board = parts.resolve(ctx.board)
    with parts.make_shell(board) as shell:
        log = read_cbmem(shell, last_boot=ctx.args.last_boot)
    if not ctx.args.wpp:
        if ctx.json:
            ctx.emit({"text": log.raw})
        else:
            print(log.raw, end="")
        return 0
    events = log.events
    if ctx.json:
        ctx.emit({"events": [e.as_dict() for e in events],
                  "malformed": [{"line": m.line_no, "text": m.raw, "reason": m.reason}
                                for m in log.malformed]})
    else:
        for e in events:
            print(e.raw)
        for m in log.malformed:
            print(f"malformed wpp line {m.line_no}: {m.reason}: {m.raw}")
    return 1 if log.malformed else 0
