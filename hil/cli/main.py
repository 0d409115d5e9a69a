"""The ``hil`` command line: one subcommand module per area, one exit-code policy.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 130 interrupted.
Expected failures (`HilError`) print a one-line cause and a hint, never a traceback;
``HIL_DEBUG=1`` shows the traceback for developers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from hil.cli import commands
from hil.cli.context import Context
from hil.cli.lease_cmd import needs_lease
from hil.core.errors import HilError
from hil.lab.lease import held

EPILOG = """\
boards come from inventory.yaml (see README); --board defaults to its default_board.
exit codes: 0 ok, 1 failure, 2 usage/config error.  HIL_DEBUG=1 shows tracebacks."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 on usage errors: keep that
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hil",
        description="Build, flash and test Whole Process Persistence on the lab board and its "
        "emulated twin.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--inventory", metavar="PATH", help="inventory file "
                        "(default: $HIL_INVENTORY or the repository's inventory.yaml)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what happens on stderr (-v: info, e.g. SSH host-key "
                        "fingerprints; -vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in commands.MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    ctx = Context(args)
    try:
        if needs_lease(args):
            # acts on a board: hold its lease while running (or use the one our run holds)
            with held(ctx.board, purpose="hil " + " ".join(_verb(argv))):
                rc = args.func(ctx)
        else:
            rc = args.func(ctx)
        return int(rc or 0)
    except HilError as exc:
        if os.environ.get("HIL_DEBUG"):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def _configure_logging(verbose: int) -> None:
    """Without -v only warnings reach stderr, so the log calls (host keys, reconnects)
    stay quiet for scripts; -v shows them, -vv adds debug detail. Secrets are never logged."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hil").setLevel(level)


def _verb(argv: Sequence[str] | None) -> list[str]:
    """The command words (no options) for the lease's purpose line; never secrets."""
    words = list(sys.argv[1:] if argv is None else argv)
    return [w for w in words[:3] if not w.startswith("-")][:2]


if __name__ == "__main__":
    sys.exit(main())
