"""Options shared by many subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse


def add_board(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", "-b", metavar="NAME",
                   help="board from the inventory (default: its default_board)")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_actions(
    sub: argparse._SubParsersAction, name: str, help: str
) -> argparse._SubParsersAction:
    """A verb whose ACTION is required (``hil power on``): bare ``hil power`` is a usage error."""
    actions = sub.add_parser(name, help=help).add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    return actions
