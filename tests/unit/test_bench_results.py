"""hil.bench.results/plots/runner: table, JSON schema, PNG plots, board scaling."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hil.bench import persist, runner
from hil.bench.results import SCHEMA, BenchReport, Fit, Measurement, format_table
from hil.bench.stats import linear_fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report() -> BenchReport:
    r = BenchReport(board="emulated", quick=True)
    r.add(Measurement("synthetic", "100 MiB", "untracked", "10 cycles", "ms",
                      samples=[100.0, 110.0, 90.0]))
    r.add(Measurement("synthetic", "100 MiB", "eager", "10 cycles", "ms",
                      samples=[3500.0, 3600.0, 3400.0], baseline="untracked", seed=35.0))
    r.add(Measurement("synthetic", "100 MiB", "lazy", "10 cycles", "ms",
                      baseline="untracked", skipped="no WPP in the kernel"))
    r.add(Measurement("redis", "SET -d 64", "untracked", "throughput", "req/s",
                      samples=[1000.0, 1200.0], higher_is_better=True))
    r.add(Measurement("redis", "SET -d 64", "eager", "throughput", "req/s",
                      samples=[900.0, 1100.0], baseline="untracked", higher_is_better=True,
                      seed_note="~1x"))
    xs = [float(m << 20) for m in (1, 64, 256)]
    ys = [160_000 + x * 1e6 / (1.3 * 2**30) for x in xs]
    r.fits.append(Fit("persist", "persist", linear_fit(xs, ys), list(zip(xs, ys, strict=True)),
                      160.0, 1.3))
    r.fits.append(Fit("persist", "restore", None, [], note="kernel has no WPP"))
    r.notes.append("persist sizes capped at 448 MiB")
    return r


def test_ratios_are_against_the_same_case_baseline() -> None:
    r = _report()
    eager = r.measurements[1]
    assert r.ratio_of(eager).median == pytest.approx(35.0)
    assert r.ratio_of(r.measurements[0]) is None  # the baseline itself
    assert r.ratio_of(r.measurements[2]) is None  # skipped
    assert r.ratio_of(r.measurements[4]).median == pytest.approx(1000 / 1100)


def test_table_shows_median_spread_ratio_seed_and_skips() -> None:
    text = format_table(_report())
    head = text.splitlines()[0].split()
    assert head[:5] == ["bench", "case", "variant", "median", "min-max"] and head[-1] == "seed"
    eager = next(line for line in text.splitlines() if "eager" in line and "100 MiB" in line)
    assert "3500 ms" in eager and "3400-3600" in eager
    assert "35.00x (30.91-40.00)" in eager and eager.rstrip().endswith("35.0x")
    assert "baseline" in next(line for line in text.splitlines() if "untracked" in line)
    assert "skipped: no WPP in the kernel" in text
    assert "persist persist: 160.0 ms fixed + 1.30 GiB/s" in text
    assert "[seed: 160 ms + 1.3 GiB/s]" in text
    assert "persist restore: no fit (kernel has no WPP)" in text
    assert "note: persist sizes capped" in text


def test_json_schema(tmp_path: Path) -> None:
    data = json.loads(_report().write_json(tmp_path / "b.json").read_text())
    assert data["schema"] == SCHEMA and data["board"] == "emulated" and data["quick"] is True
    rows = data["results"]
    eager = rows[1]
    assert eager["summary"]["median"] == 3500.0 and eager["summary"]["iqr"] == 100.0
    assert eager["ratio"]["median"] == pytest.approx(35.0) and eager["seed"] == 35.0
    assert rows[2]["summary"] is None and rows[2]["skipped"] == "no WPP in the kernel"
    assert rows[4]["seed_note"] == "~1x" and rows[4]["higher_is_better"] is True
    fit = data["fits"][0]
    assert fit["fixed_ms"] == pytest.approx(160.0) and fit["gib_per_s"] == pytest.approx(1.3)
    assert fit["seed"] == {"fixed_ms": 160.0, "gib_per_s": 1.3}
    assert len(fit["points"]) == 3 and set(fit["points"][0]) == {"bytes", "time_us"}
    assert data["fits"][1]["fit"] is None


def test_outputs_are_written_with_valid_pngs(tmp_path: Path) -> None:
    out = runner.write_outputs(_report(), tmp_path / "bench")
    names = sorted(p.name for p in out.plots)
    assert names == ["persist-persist.png", "redis.png", "synthetic.png"]
    for p in out.plots:
        blob = p.read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 2000
        w, h = int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")
        assert w >= 400 and h >= 300
    assert json.loads(out.json_path.read_text())["schema"] == SCHEMA
    mixed = _report()
    mixed.add(Measurement("synthetic", "100 MiB", "pages", "pages touched", "KiB",
                          samples=[4.0]))
    names = sorted(p.name for p in runner.write_outputs(mixed, tmp_path / "mixed").plots)
    assert names == ["persist-persist.png", "redis.png", "synthetic-KiB.png",
                     "synthetic-ms.png"]
    assert "synthetic" in out.table_path.read_text()


def test_persist_cap_and_board_scaling() -> None:
    assert persist.max_size_mib(512 << 20) == 448
    assert persist.max_size_mib(None) is None
    notes: list[str] = []
    twin = runner.for_board(runner.FULL, emulated=True, pdev_bytes=512 << 20, notes=notes)
    assert twin.persist_sizes == (1, 16, 64, 256, 448)
    assert 500 not in twin.synth_sizes
    assert twin.redis_requests == 2_000 and twin.sevenzip_dict_log2 == 18
    assert max(twin.redis_payloads) == 4096
    assert any("capped at 448 MiB" in n for n in notes)
    assert any("TCG" in n for n in notes)
    board = runner.for_board(runner.FULL, emulated=False, pdev_bytes=None, notes=[])
    assert board.synth_sizes[-1] == 500 and board.persist_sizes[-1] == 1024
    assert board.redis_requests == 100_000 and board.sevenzip_dict_log2 == 22
    # options on top of the full profile (--reps, --only) keep the board scaling
    tuned = dataclasses.replace(runner.FULL, reps=2, benches=("redis",))
    scaled = runner.for_board(tuned, emulated=True, pdev_bytes=512 << 20, notes=[])
    assert scaled.redis_requests == 2_000 and scaled.reps == 2
    quick = runner.for_board(runner.QUICK, emulated=True, pdev_bytes=512 << 20, notes=[])
    assert quick.reps == 2 and quick.synth_sizes == (1, 10)


def test_failures_exclude_rows_skipped_for_missing_wpp() -> None:
    r = _report()
    assert r.failures() == [r.measurements[2]]  # 'lazy' skipped, but WPP was not missing
    r.unavailable = "no WPP in the kernel"
    assert r.failures() == []
    broken = r.add(Measurement("redis", "SET -d 64", "lazy", "throughput", "req/s",
                               skipped="timed out after 60 s waiting for redis-server " * 3))
    assert r.failures() == [broken]
    # an empty row without a reason is a failure whether WPP is there or not
    silent = r.add(Measurement("redis", "SET -d 64", "batched", "throughput", "req/s"))
    assert r.failures() == [broken, silent]
    r.unavailable = None
    assert silent in r.failures()
    r.measurements.remove(silent)
    r.unavailable = "no WPP in the kernel"
    text = format_table(r)
    assert "skipped: no WPP on target" in text
    row = next(line for line in text.splitlines() if "lazy" in line and "redis" in line)
    assert "skipped: timed out after 60 s" in row and "..." in row and len(row) < 160
    assert r.to_json()["wpp_unavailable"] == "no WPP in the kernel"
