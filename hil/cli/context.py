"""What every subcommand needs: the parsed options, the inventory and the chosen board.

Loaded lazily so that `hil --help` and commands that need no inventory (e.g.
`hil snapshot inspect`) work even when the inventory is broken.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from hil.core import inventory as inv
from hil.core.inventory import Board, Inventory


@dataclass
class Context:
    args: argparse.Namespace
    _inventory: Inventory | None = field(default=None, repr=False)

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = inv.load(getattr(self.args, "inventory", None))
        return self._inventory

    @property
    def board(self) -> Board:
        return self.inventory.board(getattr(self.args, "board", None))

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def emit(self, data: Any, text: str | None = None) -> None:
        """Print a result as JSON (``--json``) or as human text."""
        if self.json:
            json.dump(data, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            print(text if text is not None else _plain(data))


def _plain(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for k, v in data.items():
            if isinstance(v, dict | list):
                lines.append(f"{pad}{k}:")
                lines.append(_plain(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {v}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(_plain(x, indent) if isinstance(x, dict | list) else f"{pad}- {x}"
                         for x in data)
    return f"{pad}{data}"
