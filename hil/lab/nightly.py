"""One night in the lab: ``hil nightly --board X`` builds, flashes, boots, deploys and tests.

In order, holding the board's lease throughout (a twin: a private one, so the night never
touches a twin somebody drives by hand):

1. build the firmware and the kernel (the board: in containers; the twin: locally);
2. read and keep a backup of the current flash, then flash the new ROM;
3. boot, and check the firmware banner and the ``wpp:`` init lines of this boot;
4. deploy the kernel (`hil.lab.deploy`: one-shot boot, then default, else roll back);
5. run the system suite (pytest) and ``hil bench --quick`` against the board.

Everything lands in a dated directory: ``night.json`` (every step with its outcome and
time), the suite's JUnit and HTML report, the bench JSON, ``report.md`` with the verdict,
regressions against the previous nights (`hil.lab.nightly_history`) and a plot per benchmark
over the nights. The night is appended to ``history.jsonl``. If the board does not come
back at any step, `hil.lab.recovery` runs, is recorded, and the night fails with the cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from hil.core.errors import HilError
from hil.core.inventory import Board
from hil.core.runs import REPO_ROOT, runs_root
from hil.lab import nightly_history as history


@dataclass
class NightOptions:
    out: Path  # where the dated night directories go
    history: Path  # history.jsonl
    suite: list[str] = field(default_factory=lambda: ["tests/system"])
    bench: bool = True
    bench_only: list[str] = field(default_factory=list)
    threshold: float = 0.10


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Night:
    board: str
    directory: Path
    date: str
    steps: list[Step] = field(default_factory=list)
    tests: dict[str, int] = field(default_factory=dict)
    bench: dict[str, dict[str, Any]] = field(default_factory=dict)
    regressions: list[history.Regression] = field(default_factory=list)
    recovery: dict[str, Any] | None = None
    cause: str = ""

    @property
    def ok(self) -> bool:
        return not self.cause and all(s.ok for s in self.steps) and not self.regressions

    def record(self) -> dict[str, Any]:
        return {"board": self.board, "date": self.date, "dir": str(self.directory),
                "ok": self.ok, "cause": self.cause,
                "steps": [s.__dict__ for s in self.steps], "tests": self.tests,
                "bench": self.bench, "recovery": self.recovery,
                "regressions": [r.describe() for r in self.regressions]}

    def summary(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        parts = [f"nightly {self.board} {self.date}: {verdict}"]
        if self.tests:
            parts.append(f"tests {self.tests.get('passed', 0)} passed, "
                         f"{self.tests.get('failed', 0)} failed, "
                         f"{self.tests.get('errors', 0)} errors")
        if self.regressions:
            parts.append(f"{len(self.regressions)} benchmark regression(s)")
        if self.cause:
            parts.append(f"cause: {self.cause}")
        if self.recovery is not None:
            parts.append("recovery ran: " + ("recovered" if self.recovery.get("recovered")
                                             else "NOT recovered"))
        return "; ".join(parts)


class BoardDown(HilError):
    """The board did not come back after a step; recovery follows."""


def _junit_counts(path: Path) -> dict[str, int]:
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0}
    for s in suites:
        counts["tests"] += int(s.get("tests", 0))
        counts["failed"] += int(s.get("failures", 0))
        counts["errors"] += int(s.get("errors", 0))
        counts["skipped"] += int(s.get("skipped", 0))
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    return counts


def _newest(root: Path, name: str) -> Path | None:
    found = sorted(root.rglob(name), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


class NightRunner:
    """The night's steps on one target; `run` never raises for a failed step."""

    def __init__(self, board: Board, target: Any, opts: NightOptions, night: Night,
                 say: Callable[[str], None]) -> None:
        self.board = board
        self.target = target
        self.opts = opts
        self.night = night
        self.say = say
        self.artifacts: dict[str, Any] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        start = time.monotonic()
        self.say(f"[{name}] ...")
        try:
            yield detail
        except HilError as e:
            self.night.steps.append(Step(name, False, time.monotonic() - start, str(e)))
            self.say(f"[{name}] FAILED: {e}")
            raise
        self.night.steps.append(Step(name, True, time.monotonic() - start, "; ".join(detail)))
        self.say(f"[{name}] ok ({time.monotonic() - start:.0f} s) {'; '.join(detail)}")

    # -- the steps ------------------------------------------------------------------------

    def build(self) -> None:
        with self.step("build") as d:
            if self.board.is_emulated:
                from hil.build import twin as artifacts

                built = artifacts.twin_artifacts()
                self.artifacts.update(kernel=built.kernel, initrd=built.initrd, rom=built.rom)
            else:
                from hil.build.firmware import BoardSettings
                from hil.build.firmware import build_board as build_fw
                from hil.build.kernel import build_board as build_kernel

                self.artifacts["rom"] = build_fw(settings=BoardSettings.of(self.board.firmware))
                self.artifacts["debs"] = sorted(build_kernel().glob("*.deb"))
            d.append(f"ROM {self.artifacts['rom']}")

    def flash(self) -> None:
        with self.step("flash") as d:
            with contextlib.suppress(HilError):
                self.target.force_off()
            backup = self.night.directory / "flash-before.rom"
            self.target.flash.read(backup)
            d.append(f"backup {backup.name}")
            self.target.flash_write(self.artifacts["rom"])
            d.append("new ROM written and verified")

    def boot(self) -> None:
        from hil.drivers.cbmem import read_cbmem

        with self.step("boot") as d:
            try:
                t = self.target.boot()
            except HilError as e:
                raise BoardDown(f"the board did not boot the new ROM: {e}") from e
            d.append(f"banner after {t.banner_s:.1f} s, SSH after {t.ssh_s:.1f} s")
            log = read_cbmem(self.target.shell, last_boot=True)
            reserved, handoff = log.named("region_reserved"), log.named("handoff")
            if not reserved or not handoff or handoff[-1]["status"] != 0:
                raise HilError("the firmware's wpp: init lines are missing or failed in "
                               f"this boot's cbmem (region_reserved={len(reserved)}, "
                               f"handoff={handoff[-1] if handoff else None})")
            d.append(f"wpp: region_reserved base={reserved[-1]['base']} handoff ok")

    def deploy(self) -> None:
        from hil.lab.deploy import deploy_board, deploy_twin

        with self.step("deploy") as d:
            if self.board.is_emulated:
                from hil.build import twin as artifacts

                initrd = self.artifacts["initrd"]
                result = deploy_twin(self.target, self.artifacts["kernel"],
                                     rom_for=lambda k: artifacts.firmware_rom(k, initrd),
                                     work=self.night.directory)
            else:
                result = deploy_board(self.target, self.artifacts["debs"])
            (self.night.directory / "deploy.json").write_text(
                json.dumps(result.to_json(), indent=2) + "\n")
            if not result.deployed:
                if result.rolled_back:
                    raise HilError(f"kernel not deployed ({result.cause}); rolled back")
                raise BoardDown(f"kernel not deployed and not rolled back: {result.cause}")
            d.append(f"running {result.running}")

    def _child(self, name: str, argv: list[str]) -> tuple[int, Path]:
        """Run a child (pytest, hil bench) with its artifacts under the night's `name`
        directory and its output in `<name>.log`; the board's lease passes down in
        HIL_LEASE. Returns its exit code and its log."""
        env = dict(os.environ, HIL_RUNS_DIR=str(self.night.directory / name),
                   PYTHONUNBUFFERED="1")
        log = self.night.directory / f"{name}.log"
        with open(log, "w") as out:
            rc = subprocess.run(argv, cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, check=False).returncode
        return rc, log

    def suite(self) -> None:
        with self.step("suite") as d:
            argv = [sys.executable, "-m", "pytest", *self.opts.suite,
                    f"--target={self.board.name}", "-p", "no:cacheprovider", "--color=no",
                    "-q"]
            if self.board.is_emulated:
                self.target.force_off()  # the suite boots its own twin with tonight's ROM
                argv.append(f"--twin-rom={self.artifacts['rom']}")
            rc, log = self._child("suite", argv)
            junit = _newest(self.night.directory / "suite", "junit.xml")
            if junit is None:
                raise HilError(f"the suite wrote no JUnit report (exit {rc})", f"see {log}")
            self.night.tests = _junit_counts(junit)
            d.append(f"{self.night.tests['passed']} passed, {self.night.tests['failed']} "
                     f"failed, {self.night.tests['errors']} errors")
            if rc != 0:
                raise HilError(f"the system suite failed (exit {rc}): {d[-1]}",
                               f"see {log} and the HTML report beside it")

    def bench(self) -> None:
        with self.step("bench") as d:
            argv = [sys.executable, "-m", "hil.cli.main", "bench", "--quick",
                    "--board", self.board.name]
            for b in self.opts.bench_only:
                argv += ["--only", b]
            if self.board.is_emulated:
                argv += ["--rom", str(self.artifacts["rom"])]
            rc, log = self._child("bench", argv)
            found = _newest(self.night.directory / "bench", "bench.json")
            if found is None:
                raise HilError(f"hil bench wrote no bench.json (exit {rc})", f"see {log}")
            self.night.bench = history.bench_numbers(json.loads(found.read_text()))
            d.append(f"{len(self.night.bench)} numbers from {found.name}")
            if rc != 0:
                raise HilError(f"hil bench failed (exit {rc})", f"see {log}")


def judge(night: Night, opts: NightOptions) -> None:
    """Compare tonight's benchmarks with the previous nights; write report and plots."""
    previous = [n for n in history.read(opts.history)
                if n.get("board") == night.board and n.get("dir") != str(night.directory)]
    night.regressions = history.regressions(night.bench, previous, opts.threshold)
    trend = [*previous, night.record()]
    plots = history.plot(trend, night.directory / "trends") if night.bench else []
    lines = [f"# Nightly {night.board} {night.date}", "", f"**{night.summary()}**", "",
             "| step | result | time | detail |", "|---|---|---|---|"]
    for s in night.steps:
        lines.append(f"| {s.name} | {'ok' if s.ok else 'FAILED'} | {s.seconds:.0f} s | "
                     f"{s.detail.replace('|', '/')} |")
    if night.recovery is not None:
        lines += ["", "## Recovery", "", "```", json.dumps(night.recovery, indent=2), "```"]
    lines += ["", f"## Benchmarks against {len(previous)} previous nights "
              f"(threshold {opts.threshold * 100:.0f}%, or twice the nights' spread)", ""]
    lines += [f"- REGRESSION {r.describe()}" for r in night.regressions] or [
        "- no regression" if previous else "- no previous night to compare with"]
    lines += ["", *[f"![{p.stem}](trends/{p.name})" for p in plots]]
    (night.directory / "report.md").write_text("\n".join(lines) + "\n")
    (night.directory / "night.json").write_text(json.dumps(night.record(), indent=2) + "\n")


def run_night(board: Board, opts: NightOptions, *, say: Callable[[str], None] = print) -> Night:
    """The whole night on `board` (a twin board gets a private twin)."""
    from hil.core.target import Target
    from hil.lab.lease import held
    from hil.lab.recovery import recover

    date = time.strftime("%Y-%m-%d_%H%M%S")
    directory = opts.out / f"{board.name}-{date}"
    directory.mkdir(parents=True, exist_ok=True)
    night = Night(board.name, directory, date)
    started = None
    with contextlib.ExitStack() as stack:
        if board.is_emulated:
            from hil.emulated import twin

            started = twin.up(board, state=directory / "twin", use_free_ports=True,
                              stop_at_exit=True)
            stack.callback(twin.down, started)
            board_used = started
        else:
            board_used = board
        stack.enter_context(held(board_used, "hil nightly"))
        target = Target(board_used)
        stack.callback(target.close)
        runner = NightRunner(board, target, opts, night, say)
        steps = [runner.build, runner.flash, runner.boot, runner.deploy, runner.suite]
        if opts.bench:
            steps.append(runner.bench)
        for step in steps:
            try:
                step()
            except BoardDown as e:
                night.cause = str(e)
                say(f"the board did not come back: {e}; running recovery")
                try:
                    night.recovery = recover(target, evidence_dir=directory / "recovery",
                                             force=True).to_json()
                except HilError as r:
                    night.recovery = {"recovered": False, "error": str(r)}
                break
            except HilError as e:
                night.cause = night.cause or str(e)
                if step in (runner.build, runner.flash):
                    break  # nothing later can run on a board we did not set up
    judge(night, opts)
    history.append(opts.history, night.record())
    return night


def default_dir() -> Path:
    return runs_root() / "nightly"
