"""``hil cycle`` and ``hil demo``: persist -> power cut -> boot -> recreate -> verify."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core import parts
from hil.core.errors import ConfigError
from hil.core.inventory import Board, Inventory
from hil.core.target import Target
from hil.wpp.experiment import MODES, CycleRunner, format_table


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cycle", help="power-loss cycles of a tracked program on a booted board")
    add_board(c)
    add_json(c)
    c.add_argument("--program", default="wpp-counter", choices=["wpp-counter"],
                   help="the probe program (default wpp-counter)")
    c.add_argument("--mode", choices=MODES, default="eager", help="kernel tracking mode")
    c.add_argument("--count", type=int, default=1, metavar="N", help="cycles in a row")
    c.add_argument("--buffer-mib", type=int, default=1, metavar="N",
                   help="size of the counter's checksummed buffer")
    c.add_argument("--hold", type=float, metavar="S", help="mains-off time (default: inventory)")
    c.set_defaults(func=cycle)
    d = sub.add_parser("demo", help="the whole story on a private twin: build, boot, count, "
                       "cut power, boot, recreate, continue (what 'make demo' runs)")
    d.add_argument("--board", "-b", metavar="NAME",
                   help="an emulated board of the inventory (one with an 'emulated:' section; "
                   "default: the default_board if it is one, else the first)")
    add_json(d)
    d.add_argument("--mode", choices=MODES, default="eager")
    d.add_argument("--count", type=int, default=1, metavar="N")
    d.set_defaults(func=demo)


def cycle(ctx: Context) -> int:
    target = Target(parts.resolve(ctx.board))
    target.ensure_booted()
    runner = CycleRunner(target, mode=ctx.args.mode, buffer_mib=ctx.args.buffer_mib,
                         hold_s=ctx.args.hold,
                         on_step=None if ctx.json else (lambda m: print(f"--> {m}")))
    runner.start()
    reports = []
    for i in range(1, ctx.args.count + 1):
        reports.append(runner.cycle(i))
        if not reports[-1].ok:
            break
    ctx.emit([r.to_json() for r in reports], format_table(reports))
    return 0 if all(r.ok for r in reports) else 1


def demo_board(inventory: Inventory, name: str | None) -> Board:
    """The twin the demo runs on. A lab board is refused before anything starts: the demo
    cuts mains and reboots the board it is given, so it must never reach lab hardware."""
    if name is None:
        twins = [n for n, b in inventory.boards.items() if b.is_emulated]
        if not twins:
            raise ConfigError(f"{inventory.path}: no emulated board to run the demo on",
                              "add a board with an 'emulated:' section (see inventory.yaml)")
        name = inventory.default_board if inventory.default_board in twins else twins[0]
    board = inventory.board(name)
    if not board.is_emulated:
        twins = sorted(n for n, b in inventory.boards.items() if b.is_emulated)
        raise ConfigError(
            f"hil demo runs on an emulated board only; '{name}' is a lab board "
            "(no 'emulated:' section)",
            f"use --board {twins[0]}, or 'hil cycle --board {name}' on the lab board"
            if twins else f"use 'hil cycle --board {name}' on the lab board",
        )
    return board


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr, for Python prints and for the build scripts and tools the demo
    runs as child processes (they inherit file descriptor 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def demo(ctx: Context) -> int:
    from hil.wpp import demo as narrated

    board = demo_board(ctx.inventory, ctx.args.board)
    if not ctx.json:
        return narrated.main(board, ctx.args.mode, ctx.args.count)
    # --json: stdout carries the result alone; the narration goes to stderr
    with _stdout_to_stderr():
        reports = narrated.run_demo(board, ctx.args.mode, ctx.args.count)
    ok = bool(reports) and all(r.ok for r in reports)
    ctx.emit({"board": board.name, "mode": ctx.args.mode, "ok": ok,
              "cycles": [r.to_json() for r in reports]})
    return 0 if ok else 1
