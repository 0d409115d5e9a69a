"""``hil ssh -- CMD``: run a command on the board's OS and pass its exit code through."""

from __future__ import annotations

import argparse
import sys

from hil.cli.context import Context
from hil.cli.options import add_board
from hil.core import parts
from hil.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ssh", help="run a command on the board over SSH: hil ssh -- CMD")
    add_board(p)
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="command timeout (default 120 s)")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for SSH to come up first")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    p.set_defaults(func=run)


def run(ctx: Context) -> int:
    cmd = [c for c in ctx.args.cmd if c != "--"] if ctx.args.cmd[:1] == ["--"] else ctx.args.cmd
    if not cmd:
        raise ConfigError("no command given", "usage: hil ssh -- uname -a")
    board = parts.resolve(ctx.board)
    with parts.make_shell(board) as shell:
        if ctx.args.wait:
            shell.wait_reachable(ctx.args.wait)
        res = shell.run(" ".join(cmd), timeout=ctx.args.timeout, check=False)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.exit_code
