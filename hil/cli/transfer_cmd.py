"""``hil put SRC DST`` / ``hil get SRC DST``: files to and from the board's OS over SFTP."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core import parts
from hil.drivers import transfer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("put", help="copy a local file to the board (SFTP, sha256-checked)",
                       description="Copy a local file to the board's OS; DST may be a "
                       "directory there. The copy is checked with sha256 on both sides.")
    p.add_argument("src", type=Path, help="local file")
    p.add_argument("dst", help="path on the board (a directory keeps the file's name)")
    g = sub.add_parser("get", help="copy a file from the board (SFTP, sha256-checked)",
                       description="Copy a file from the board's OS; DST may be a local "
                       "directory. The copy is checked with sha256 on both sides.")
    g.add_argument("src", help="path on the board")
    g.add_argument("dst", type=Path, help="local file or directory")
    for q in (p, g):
        add_board(q)
        add_json(q)
        q.add_argument("--wait", type=float, default=0.0, metavar="S",
                       help="wait up to S seconds for SSH to come up first")
    p.set_defaults(func=cmd_put)
    g.set_defaults(func=cmd_get)


def _run(ctx: Context, put: bool) -> int:
    board = parts.resolve(ctx.board)
    with parts.make_shell(board) as shell:
        if ctx.args.wait:
            shell.wait_reachable(ctx.args.wait)
        done = (transfer.put(shell, ctx.args.src, ctx.args.dst) if put
                else transfer.get(shell, ctx.args.src, ctx.args.dst))
    where = f"{board.name}:"
    src, dst = (done.source, where + done.destination) if put else (where + done.source,
                                                                       done.destination)
    ctx.emit(asdict(done), f"{src} -> {dst} ({done.size} bytes, sha256 {done.sha256[:12]} "
                           "on both sides)")
    return 0


def cmd_put(ctx: Context) -> int:
    return _run(ctx, put=True)


def cmd_get(ctx: Context) -> int:
    return _run(ctx, put=False)
