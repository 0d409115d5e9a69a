"""``hil power``: ATX buttons and real mains cuts of a board."""

from __future__ import annotations

import argparse

from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json
from hil.core import parts


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "power", "board power: status, ATX buttons, mains cut")
    specs = {
        "status": "power LED and mains state",
        "on": "press power if the board is off (refused while mains are cut)",
        "off": "graceful press, held (hard off) after a timeout",
        "reset": "press reset",
        "cut": "remove mains power (relay/plug), hold it off, restore it",
        "restore": "give mains power back (after 'cut --stay')",
        "cycle": "cut mains, hold, restore, press power: a real power cycle",
    }
    for name, help_text in specs.items():
        c = s.add_parser(name, help=help_text, description=help_text)
        add_board(c)
        add_json(c)
        if name in ("cut", "cycle"):
            c.add_argument("--hold", type=float, metavar="S",
                           help="seconds without mains (default: the inventory's hold_s)")
        if name == "cut":
            c.add_argument("--stay", action="store_true", help="leave mains off")
        c.set_defaults(func=run)


def run(ctx: Context) -> int:
    board = parts.resolve(ctx.board)
    power = parts.make_power(board)
    action = ctx.args.action
    if action == "status":
        state = power.state()
        ctx.emit({"board": board.name, "power": state.value}, f"{board.name}: {state.value}")
        return 0
    # Each action raises unless it happened, so what is printed below is the outcome,
    # stated after the fact with the state read back afterwards.
    if action == "cut":
        power.cut(ctx.args.hold, stay_cut=ctx.args.stay)
        done = ("mains cut; they stay cut until "
                f"'hil power restore --board {board.name}'" if ctx.args.stay
                else "mains were cut, held off and restored")
    elif action == "cycle":
        power.cycle(ctx.args.hold)
        done = "mains were cut and restored, power pressed"
    else:
        getattr(power, action)()
        done = {"on": "powered on", "off": "powered off", "reset": "reset pressed",
                "restore": "mains restored"}[action]
    now = power.state().value
    ctx.emit({"board": board.name, "action": action, "done": done, "power": now},
             f"{board.name}: {done}; now {now}")
    return 0
