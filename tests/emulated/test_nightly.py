"""`hil nightly` on the twin: a whole night (build, flash with backup, boot with wpp: lines,
deploy, a system test, a benchmark) writes its report and history; a regression injected
into the history is then flagged in the report, the summary line and the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil.lab import nightly_history as H

pytestmark = [pytest.mark.twin, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def hil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, check=False)


def test_a_night_reports_and_a_regression_is_flagged(tmp_path: Path) -> None:
    out = tmp_path / "nightly"
    res = hil("nightly", "--board", "emulated", "--out", str(out),
              "--suite", "tests/system/test_boot_firmware.py",
              "--suite=-k", "--suite=reserves_the_wpp_region",
              "--bench-only", "synthetic", "--json")
    night = json.loads(res.stdout)
    assert res.returncode == 0, (night.get("cause"), res.stderr[-3000:])
    assert [s["name"] for s in night["steps"]] == ["build", "flash", "boot", "deploy", "suite",
                                                    "bench"]
    assert all(s["ok"] for s in night["steps"]), night["steps"]
    directory = Path(night["dir"])
    assert (directory / "flash-before.rom").stat().st_size == 16 << 20  # the backup
    assert "wpp: region_reserved" in next(s["detail"] for s in night["steps"]
                                          if s["name"] == "boot")
    assert night["tests"]["passed"] >= 1 and night["tests"]["failed"] == 0
    assert list(directory.glob("suite/**/junit.xml")) and list(directory.glob("suite/**/*.html"))
    assert list(directory.glob("bench/**/bench.json"))
    assert night["bench"], "tonight's benchmark numbers are in the history"
    history = out / "history.jsonl"
    assert [n["date"] for n in H.read(history)] == [night["date"]]
    assert "no previous night" in (directory / "report.md").read_text()
    assert (directory / "trends" / "synthetic.png").is_file()

    # inject: three earlier nights on which every number was far better
    better = []
    for i in range(3):
        nums = {k: {**v, "value": v["value"] * (2.0 if v["higher_is_better"] else 0.5)}
                for k, v in night["bench"].items()}
        better.append({"board": "emulated", "date": f"2026-01-0{i + 1}_000000",
                       "dir": f"/old/{i}", "bench": nums})
    history.write_text("".join(json.dumps(n) + "\n" for n in [*better, *H.read(history)]))
    res = hil("nightly", "--board", "emulated", "--out", str(out), "--rejudge", str(directory))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAILED" in res.stdout and "benchmark regression(s)" in res.stdout
    assert "REGRESSION synthetic/" in res.stdout
    report = (directory / "report.md").read_text()
    assert "REGRESSION synthetic/" in report and "against 3 previous nights" in report
