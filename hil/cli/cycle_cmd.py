"""``hil cycle`` and ``hil demo``: persist -> power cut -> boot -> recreate -> verify."""

from __future__ import annotations

import argparse

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core import parts
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


def demo(ctx: Context) -> int:
    from hil.wpp.demo import main

    return main(ctx.inventory.board("emulated"), ctx.args.mode, ctx.args.count)
