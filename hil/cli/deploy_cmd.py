"""``hil deploy kernel``: install a kernel on a board, keeping the previous one to roll back to."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hil.build import twin as artifacts
from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json
from hil.core.errors import ConfigError
from hil.core.parts import resolve
from hil.core.target import Target
from hil.lab.deploy import DeployResult, deploy_board, deploy_twin


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "deploy", "install a built kernel on the board (rolls back if it "
                    "does not come up)")
    k = s.add_parser("kernel", help="the board: .debs + GRUB one-shot entry; the twin: a ROM "
                     "with the kernel as payload; rolled back if it does not boot",
                     description="Installs the kernel so that only the next boot uses it, "
                     "reboots, checks the running version, then makes it the default. If it "
                     "does not come up, the board returns to the previous kernel.")
    add_board(k)
    add_json(k)
    k.add_argument("--kernel", type=Path, help="the twin: a bzImage (default: the build's)")
    k.add_argument("--debs", type=Path, help="the board: a directory of .debs (default: "
                   "'hil build kernel --board B')")
    k.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="boot deadline of the new kernel (default 600 s)")
    k.set_defaults(func=run)


def run(ctx: Context) -> int:
    board = resolve(ctx.board)
    target = Target(board)
    try:
        if board.is_emulated:
            kernel = ctx.args.kernel or artifacts.kernel_image()
            if not kernel.is_file():
                raise ConfigError(f"no such kernel: {kernel}", "pass a built bzImage")
            initrd = artifacts.guest_initramfs()
            with tempfile.TemporaryDirectory(prefix="hil-deploy-") as work:
                result = deploy_twin(target, kernel, timeout=ctx.args.timeout,
                                     rom_for=lambda k: artifacts.firmware_rom(k, initrd),
                                     work=Path(work))
        else:
            if ctx.args.debs is None:
                from hil.build.kernel import build_board

                debs_dir = build_board()
            else:
                debs_dir = ctx.args.debs
            debs = sorted(debs_dir.glob("*.deb"))
            if not debs:
                raise ConfigError(f"no .deb in {debs_dir}", "hil build kernel --board B")
            result = deploy_board(target, debs, timeout=ctx.args.timeout)
    finally:
        target.close()
    ctx.emit(result.to_json(), _text(board.name, result))
    return 0 if result.deployed else 1


def _text(name: str, r: DeployResult) -> str:
    lines = [f"  - {s}" for s in r.steps]
    if r.deployed:
        lines.append(f"{name}: deployed; running {r.running}")
    elif r.rolled_back:
        lines.append(f"{name}: NOT deployed ({r.cause}); rolled back, running {r.running}")
    else:
        lines.append(f"{name}: NOT deployed ({r.cause}); running {r.running}")
    return "\n".join(lines)
