"""``hil flash``: probe, back up, write and verify the board's flash chip with flashrom."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json
from hil.core import parts
from hil.core.target import Target


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "flash", "flashrom on the board's chip (backup first, always)")
    pr = s.add_parser("probe", help="detect the chip (name, vendor, size)")
    pr.set_defaults(func=probe)
    rd = s.add_parser("read", help="read the whole chip into FILE (with a .sha256)")
    rd.add_argument("file", type=Path, nargs="?",
                    help="output (default: runs/<timestamp>/flash/backup-*.rom)")
    rd.set_defaults(func=read)
    wr_help = ("write IMAGE: size checked first, backup read first, VERIFIED required; "
               "refused while the board is on (external flashing)")
    wr = s.add_parser("write", help=wr_help, description=wr_help[0].upper() + wr_help[1:]
                      + ". The backup (with its sha256) is kept in the run's flash directory; "
                      "the ROM written becomes known good for hil recover once a boot "
                      "through hil (recover, nightly, the test suite) reaches the OS.")
    wr.add_argument("image", type=Path)
    wr.set_defaults(func=write)
    vf = s.add_parser("verify", help="compare the chip (or its bios region) with IMAGE")
    vf.add_argument("image", type=Path)
    vf.set_defaults(func=verify)
    for c in (pr, rd, wr, vf):
        add_board(c)
        add_json(c)


def probe(ctx: Context) -> int:
    chip = parts.make_flash(parts.resolve(ctx.board)).probe()
    ctx.emit({"name": chip.name, "vendor": chip.vendor, "size": chip.size},
             f"{chip.vendor} {chip.name}, {chip.size} bytes")
    return 0


def read(ctx: Context) -> int:
    backup = parts.make_flash(parts.resolve(ctx.board)).read(ctx.args.file)
    ctx.emit({"path": str(backup.path), "sha256": backup.sha256, "size": backup.size},
             f"{backup.path} ({backup.size} bytes, sha256 {backup.sha256})")
    return 0


def write(ctx: Context) -> int:
    result = Target(parts.resolve(ctx.board)).flash_write(ctx.args.image)
    ctx.emit(
        {"image": str(result.image), "image_sha256": result.image_sha256,
         "backup": str(result.backup.path), "backup_sha256": result.backup.sha256,
         "duration_s": round(result.duration, 1)},
        f"VERIFIED {result.image} ({result.duration:.1f} s); "
        f"previous contents backed up to {result.backup.path}",
    )
    return 0


def verify(ctx: Context) -> int:
    ok = parts.make_flash(parts.resolve(ctx.board)).verify(ctx.args.image, check=False)
    ctx.emit({"image": str(ctx.args.image), "verified": ok},
             f"{ctx.args.image}: {'matches the chip' if ok else 'DIFFERS from the chip'}")
    return 0 if ok else 1
