"""``hil snapshot inspect FILE``: read a persistent-device image offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.cli.context import Context
from hil.cli.options import add_actions, add_json
from hil.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "snapshot", "offline tools for persistent-device images")
    i = s.add_parser("inspect", help="header, counts, sections, CRC status and completion "
                     "marker of a snapshot (exit 0 for a complete one, 1 otherwise)")
    i.add_argument("file", type=Path, help="persistent-device image (the twin's pdev.img)")
    i.add_argument("--no-pages", action="store_true",
                   help="skip the page-area CRC (fast on large images)")
    add_json(i)
    i.set_defaults(func=inspect)


def inspect(ctx: Context) -> int:
    from hil.wpp.snapshot import Verdict
    from hil.wpp.snapshot import inspect as read_snapshot

    path: Path = ctx.args.file
    if not path.is_file():
        raise ConfigError(f"no such image file: {path}",
                       "the twin's persistent device is <state_dir>/pdev.img "
                       "(see 'hil emulate status')")
    report = read_snapshot(path, verify_pages=not ctx.args.no_pages)
    if ctx.json:
        print(report.to_json())
    else:
        print(report.format_text())
    return 0 if report.verdict is Verdict.COMPLETE else 1
