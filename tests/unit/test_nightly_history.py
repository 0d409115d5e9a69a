"""hil.lab.nightly_history: numbers from bench.json, and regressions judged against the nights."""

from __future__ import annotations

from pathlib import Path

from hil.lab import nightly_history as H


def night(**values: float) -> dict:
    return {"board": "b", "bench": {k: {"value": v, "higher_is_better": k.startswith("bw"),
                                        "kind": "ratio"} for k, v in values.items()}}


def test_bench_numbers_prefer_the_same_run_ratio() -> None:
    bench = {"results": [
        {"bench": "synthetic", "case": "10 MiB", "variant": "eager", "metric": "10 cycles",
         "unit": "ms", "higher_is_better": False, "summary": {"median": 50.0},
         "ratio": {"median": 9.5}},
        {"bench": "synthetic", "case": "10 MiB", "variant": "untracked",
         "metric": "10 cycles", "unit": "ms", "higher_is_better": False,
         "summary": {"median": 5.0}, "ratio": None},
        {"bench": "redis", "case": "SET", "variant": "lazy", "metric": "rps", "unit": "req/s",
         "higher_is_better": True, "summary": None, "ratio": None}],
        "fits": [{"bench": "persist", "name": "persist", "gib_per_s": 0.16}]}
    nums = H.bench_numbers(bench)
    assert nums["synthetic/10 MiB/eager/10 cycles"]["value"] == 9.5
    assert nums["synthetic/10 MiB/untracked/10 cycles"] == {
        "value": 5.0, "kind": "ms", "higher_is_better": False}
    assert "redis/SET/lazy/rps" not in nums  # nothing measured
    assert nums["persist/fit/persist/GiB/s"]["higher_is_better"]


def test_a_worse_night_is_flagged_and_a_better_one_is_not() -> None:
    past = [night(t=10.0, bw=1.0) for _ in range(3)]
    regs = H.regressions(night(t=11.5, bw=0.8)["bench"], past, 0.10)
    assert [r.key for r in regs] == ["bw", "t"]
    assert abs(regs[1].change - 0.15) < 1e-9
    assert "worse" in regs[1].describe()
    assert H.regressions(night(t=9.0, bw=1.3)["bench"], past, 0.10) == []
    assert H.regressions(night(t=10.9)["bench"], past, 0.10) == []  # within 10 %


def test_a_noisy_benchmark_needs_more_than_its_own_spread() -> None:
    past = [night(t=v) for v in (8.0, 12.0, 9.0, 11.0, 10.0, 12.5, 7.5)]
    assert H.regressions(night(t=13.0)["bench"], past, 0.10) == []  # 30 % < 2 x spread
    assert len(H.regressions(night(t=20.0)["bench"], past, 0.10)) == 1


def test_no_previous_night_no_judgement_and_history_round_trips(tmp_path: Path) -> None:
    assert H.regressions(night(t=100.0)["bench"], [], 0.10) == []
    path = tmp_path / "h" / "history.jsonl"
    H.append(path, night(t=1.0))
    H.append(path, night(t=2.0))
    assert [n["bench"]["t"]["value"] for n in H.read(path)] == [1.0, 2.0]
    plots = H.plot(H.read(path), tmp_path / "trends")
    assert [p.name for p in plots] == ["t.png"] and plots[0].stat().st_size > 1000
