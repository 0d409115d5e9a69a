"""``hil build``: build or reuse (content-hash cache) a board's firmware, kernel, guest image.

The twin's pieces build locally (`hil.build.twin`); the lab board's firmware (Dasharo)
and kernel (Ubuntu 22.04 packages) build in Docker, and without a Docker engine the
command says so and prints what it would run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.build import twin as artifacts
from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core.errors import ConfigError

WHAT = ("firmware", "kernel", "rootfs", "all")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build or reuse cached firmware, kernel, guest image")
    p.add_argument("what", choices=WHAT, help="the twin: all = kernel + rootfs + ROM with "
                   "them as payload; the board: firmware (Dasharo) or kernel (.debs) in Docker")
    p.add_argument("--base-image", default=None, metavar="IMAGE",
                   help="the board's kernel: base of its build image (default ubuntu:22.04, "
                   "as the board runs; or $WPP_KERNEL_BASE_IMAGE)")
    add_board(p)
    add_json(p)
    p.set_defaults(func=run)


def run(ctx: Context) -> int:
    board = ctx.board
    what = ctx.args.what
    out: dict[str, str] = {}
    if board.is_emulated:
        if what in ("kernel", "all", "firmware"):
            out["kernel"] = str(artifacts.kernel_image())
        if what in ("rootfs", "all", "firmware"):
            out["initrd"] = str(artifacts.guest_initramfs())
        if what in ("firmware", "all"):
            out["rom"] = str(artifacts.firmware_rom(Path(out["kernel"]), Path(out["initrd"])))
    else:
        if what == "rootfs":
            raise ConfigError(f"board '{board.name}' runs its own OS: there is no guest image",
                              "build 'kernel' (Debian packages) or 'firmware' for it")
        if what in ("firmware", "all"):
            from hil.build.firmware import BoardSettings
            from hil.build.firmware import build_board as build_fw

            out["rom"] = str(build_fw(settings=BoardSettings.of(board.firmware)))
        if what in ("kernel", "all"):
            from hil.build.kernel import build_board as build_kernel

            out["kernel_debs"] = str(build_kernel(base_image=ctx.args.base_image))
    ctx.emit(out, "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0
