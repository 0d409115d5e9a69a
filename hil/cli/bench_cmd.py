"""``hil bench``: the seed's evaluation as benchmarks (numbers and ratios, not pass/fail).

On the emulated board a private twin is started (own state directory, free loopback
ports, the ROM built by `hil.build.twin.twin_rom` or given with ``--rom``) unless
``--board`` names a twin that is already running; a real board is used as the
inventory describes it. Results: a table on stdout (``--json``: the JSON), and
``bench.json``, ``table.txt`` and PNG plots under ``runs/<timestamp>/bench/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from hil.bench.runner import BENCHES

    p = sub.add_parser("bench", help="benchmarks: tracked vs untracked ratios, persist/restore "
                       "time fit, orchestrator timings (table, JSON, plots under runs/)")
    add_board(p)
    add_json(p)
    p.add_argument("--quick", action="store_true",
                   help="a small version (2 runs, small sizes, few requests): what CI runs")
    p.add_argument("--only", action="append", choices=BENCHES, metavar="BENCH",
                   help=f"run only this benchmark (repeatable): {', '.join(BENCHES)}")
    p.add_argument("--reps", type=int, metavar="N", help="repetitions (default 5, --quick 2)")
    p.add_argument("--rom", metavar="PATH", help="private twin: flash this ROM instead of "
                   "building it")
    p.set_defaults(func=bench)


def _config(args: argparse.Namespace) -> Any:
    from hil.bench.runner import FULL, QUICK

    config = QUICK if args.quick else FULL
    if args.reps is not None:
        if args.reps < 1:
            raise ConfigError(f"--reps must be at least 1 (got {args.reps})")
        config = dataclasses.replace(config, reps=args.reps)
    if args.only:
        config = dataclasses.replace(config, benches=tuple(dict.fromkeys(args.only)))
    return config


def _step(ctx: Context) -> Any:
    return lambda msg: print(f"--> {msg}", file=sys.stderr, flush=True)


def bench(ctx: Context) -> int:
    from hil.bench.results import format_table
    from hil.bench.runner import run_benchmarks
    from hil.core.runs import artifact_dir

    config = _config(ctx.args)
    if ctx.args.rom and not Path(ctx.args.rom).is_file():
        raise ConfigError(f"ROM {ctx.args.rom} does not exist", "pass a built twin ROM to --rom")
    out_dir = artifact_dir("bench")
    board = ctx.board
    if board.emulated is not None and not _running_twin(ctx, board):
        result = _on_private_twin(ctx, board, config, out_dir)
    else:
        from hil.core import parts
        from hil.core.target import Target
        from hil.lab.lease import held

        # the board (or the user's running twin) is shared: hold its lease; a private
        # twin above is ours alone
        target = Target(parts.resolve(board))
        try:
            with held(board, "hil bench"):
                target.ensure_booted()
                result = run_benchmarks(target, config, out_dir, quick=ctx.args.quick,
                                        step=_step(ctx))
        finally:
            target.close()
    ctx.emit(result.report.to_json(), format_table(result.report))
    print(f"results: {result.json_path}, {result.table_path}, "
          f"{len(result.plots)} plot(s) in {out_dir}", file=sys.stderr)
    failed = result.report.failures()
    for m in failed:
        print(f"error: {m.bench} {m.case} {m.variant}: {m.skipped or 'no samples'}",
              file=sys.stderr)
    return 1 if failed else 0


def _running_twin(ctx: Context, board: Any) -> bool:
    """True when the user named this board and its twin is already up."""
    if getattr(ctx.args, "board", None) is None:
        return False
    from hil.emulated import twin

    return bool(twin.status(board).get("running"))


def _on_private_twin(ctx: Context, board: Any, config: Any, out_dir: Path) -> Any:
    from hil.bench.runner import run_benchmarks
    from hil.build import twin as artifacts
    from hil.emulated.private import private_twin

    rom = Path(ctx.args.rom).resolve() if ctx.args.rom else artifacts.twin_rom()
    with private_twin(board, rom, "bench") as target:
        target.boot()
        return run_benchmarks(target, config, out_dir, quick=ctx.args.quick, step=_step(ctx))
