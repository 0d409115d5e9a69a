"""The ``hil`` command line."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("hil: under construction", file=sys.stderr)
    return 1
