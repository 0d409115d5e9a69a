"""``hil emulate up|down|status``: the twin in the background, driven by every other verb."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.build import twin as artifacts
from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json
from hil.core import parts
from hil.emulated import twin


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "emulate", "run the emulated board (QEMU twin) in the background")
    up = s.add_parser("up", help="build/reuse the ROM, flash it, start the twin, power it on")
    add_board(up)
    add_json(up)
    up.add_argument("--rom", type=Path, help="flash this ROM instead of the built twin ROM")
    up.add_argument("--no-flash", action="store_true", help="keep what the chip holds")
    up.add_argument("--off", action="store_true", help="leave the machine powered off")
    up.set_defaults(func=cmd_up)
    down = s.add_parser("down", help="stop the twin (daemon and QEMU)")
    add_board(down)
    add_json(down)
    down.set_defaults(func=cmd_down)
    st = s.add_parser("status", help="what runs where: daemon, power, endpoints, files")
    add_board(st)
    add_json(st)
    st.set_defaults(func=cmd_status)


def cmd_up(ctx: Context) -> int:
    board = ctx.board
    rom = None
    if not ctx.args.no_flash:
        rom = ctx.args.rom or artifacts.twin_rom()
    running = twin.up(board, rom=rom)
    if not ctx.args.off:
        parts.make_power(running).on()
    info = twin.status(board)
    if ctx.json:
        ctx.emit(info)
        return 0
    print(f"twin '{board.name}' up in {info['state_dir']}")
    machine = info.get("machine") or {}
    if machine.get("accel"):
        print(f"  accel   {machine['accel']} ({machine.get('accel_reason')})")
    for name, url in info.get("endpoints", {}).items():
        print(f"  {name:7s} {url}")
    print("drive it with: hil power status | hil console | hil ssh -- uname -a | "
          "hil logs cbmem --wpp")
    return 0


def cmd_down(ctx: Context) -> int:
    stopped = twin.down(ctx.board)
    ctx.emit({"board": ctx.board.name, "stopped": bool(stopped)},
             f"twin '{ctx.board.name}': {'stopped' if stopped else 'was not running'}")
    return 0


def cmd_status(ctx: Context) -> int:
    info = twin.status(ctx.board)
    ctx.emit(info)
    return 0 if info.get("running") else 1
