"""The registry of subcommand modules, in the order `hil --help` lists them."""

from hil.cli import inventory_cmd

MODULES = [inventory_cmd]
