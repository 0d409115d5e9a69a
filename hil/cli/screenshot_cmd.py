"""``hil screenshot``: the PiKVM's video snapshot as a JPEG (the twin renders QEMU's screen)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core import parts
from hil.core.runs import artifact_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screenshot", help="save the board's screen as JPEG")
    add_board(p)
    add_json(p)
    p.add_argument("file", nargs="?", type=Path,
                   help="output file (default: runs/<timestamp>/<board>/screenshot.jpg)")
    p.add_argument("--allow-offline", action="store_true",
                   help="without video (board off), save kvmd's placeholder image "
                   "instead of failing")
    p.set_defaults(func=run)


def run(ctx: Context) -> int:
    board = parts.resolve(ctx.board)
    path = ctx.args.file or artifact_dir(board.name) / "screenshot.jpg"
    out = parts.make_pikvm(board).snapshot(path, allow_offline=ctx.args.allow_offline)
    ctx.emit({"board": board.name, "file": str(out)}, str(out))
    return 0
