"""``hil nightly --board X``: the lab's night (build, flash, boot, deploy, suite, bench),
with a dated report, the history of every night, and benchmark regressions flagged."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.cli.context import Context
from hil.cli.options import add_board, add_json
from hil.core.errors import ConfigError
from hil.lab import nightly


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "nightly", help="the whole night on a board: build, flash (backup first), boot and "
        "check wpp: lines, deploy the kernel, system suite, bench --quick; report + history",
        description="Runs the night under the board's lease (a twin board: a private twin). "
        "Writes <out>/<board>-<date>/ (night.json, report.md, suite JUnit/HTML, bench JSON, "
        "trend plots) and appends to the history; exit 1 if a step failed or a benchmark "
        "regressed beyond the threshold (judged against the nights' spread).")
    add_board(p)
    add_json(p)
    p.add_argument("--out", type=Path, default=None,
                   help="reports directory (default: runs/nightly)")
    p.add_argument("--history", type=Path, default=None,
                   help="history file (default: <out>/history.jsonl)")
    p.add_argument("--suite", action="append", metavar="PYTEST_ARG",
                   help="what pytest runs (repeatable, --suite=-k for options; default "
                   "tests/system)")
    p.add_argument("--bench-only", action="append", default=[], metavar="BENCH",
                   help="only this benchmark in hil bench --quick (repeatable)")
    p.add_argument("--no-bench", action="store_true", help="skip hil bench --quick")
    p.add_argument("--threshold", type=float, default=10.0, metavar="PERCENT",
                   help="regression threshold in percent (default 10)")
    p.add_argument("--rejudge", type=Path, metavar="NIGHT_DIR",
                   help="only judge an existing night again against the history (its report, "
                   "plots and exit code), e.g. after the history was edited")
    p.set_defaults(func=run)


def _options(ctx: Context) -> nightly.NightOptions:
    out = ctx.args.out or nightly.default_dir()
    if ctx.args.threshold <= 0:
        raise ConfigError("--threshold must be more than 0 percent")
    return nightly.NightOptions(
        out=out, history=ctx.args.history or out / "history.jsonl",
        suite=ctx.args.suite or ["tests/system"], bench=not ctx.args.no_bench,
        bench_only=ctx.args.bench_only, threshold=ctx.args.threshold / 100)


def _reload(directory: Path) -> nightly.Night:
    path = directory / "night.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", "name a directory hil nightly wrote")
    rec = json.loads(path.read_text())
    night = nightly.Night(rec["board"], Path(rec["dir"]), rec["date"],
                          steps=[nightly.Step(**s) for s in rec["steps"]],
                          tests=rec.get("tests", {}), bench=rec.get("bench", {}),
                          recovery=rec.get("recovery"), cause=rec.get("cause", ""))
    return night


def run(ctx: Context) -> int:
    opts = _options(ctx)
    if ctx.args.rejudge is not None:
        night = _reload(ctx.args.rejudge)
        nightly.judge(night, opts)
    else:
        night = nightly.run_night(
            ctx.board, opts, say=lambda m: print(m, file=sys.stderr, flush=True))
    text = [night.summary(), *[f"  REGRESSION {r.describe()}" for r in night.regressions],
            f"report: {night.directory / 'report.md'}"]
    ctx.emit(night.record(), "\n".join(text))
    return 0 if night.ok else 1
