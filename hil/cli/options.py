"""Options shared by many subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse


def add_board(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", "-b", metavar="NAME",
                   help="board from the inventory (default: its default_board)")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")
