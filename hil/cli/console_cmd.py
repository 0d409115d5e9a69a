"""``hil console``: follow a board's serial console (logged under runs/)."""

from __future__ import annotations

import argparse
import sys
import threading

from hil.cli.context import Context
from hil.cli.options import add_board
from hil.core import parts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("console", help="follow the serial console (Ctrl-C to stop)")
    add_board(p)
    p.add_argument("--for", dest="duration", type=float, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C)")
    p.set_defaults(func=run)


def run(ctx: Context) -> int:
    board = parts.resolve(ctx.board)
    console = parts.make_console(board)
    print(f"[console] {board.serial.url} -> {console.line_log_path}", file=sys.stderr)
    stop = threading.Event()
    if ctx.args.duration is not None:
        # a daemon timer: Ctrl-C must not leave the process waiting for --for to pass
        timer = threading.Timer(ctx.args.duration, stop.set)
        timer.daemon = True
        timer.start()
    try:
        for chunk in console.follow(since=0, stop=stop):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        console.close()
    return 0
