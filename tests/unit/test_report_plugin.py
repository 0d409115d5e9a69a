"""hil.pytest.report: a tiny inner suite run in a subprocess leaves JUnit, HTML and KTAP."""

from __future__ import annotations

import importlib.metadata
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER = '''
import pytest
from pathlib import Path

def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert 6 * 7 == 41, "the answer is wrong"

@pytest.mark.skip(reason="needs the real board")
def test_skipped():
    pass

def test_with_plot(request):
    png = Path(__file__).parent / "plot.png"
    png.write_bytes(b"png")
    request.node.user_properties.append(("artifact:plot", str(png)))

def test_broken_fixture(broken):
    pass

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")
'''

# What hil.pytest.plugin adds to a failing board test: a "hil artifacts" section of
# "label: path" lines pointing into the run directory.
CONFTEST = '''
import os
import pytest
from pathlib import Path

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "call":
        run = Path(os.environ["HIL_RUNS_DIR"])
        d = next(p for p in run.iterdir() if p.is_dir()) / "artifacts" / item.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "serial.log").write_text("coreboot-4.15 bootblock starting\\n")
        (d / "cbmem.txt").write_text("wpp: init status=0\\n")
        report.sections.append(("hil artifacts",
                                f"cbmem: {d / 'cbmem.txt'}\\nserial: {d / 'serial.log'}"))
'''


def _plugin_args() -> list[str]:
    """``-p hil.pytest.report`` unless the installed entry point already loads it."""
    eps = importlib.metadata.entry_points(group="pytest11")
    return [] if any(ep.value == "hil.pytest.report" for ep in eps) else ["-p",
                                                                          "hil.pytest.report"]


@pytest.fixture
def inner_run(pytester: pytest.Pytester, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> tuple[pytest.RunResult, Path]:
    runs = tmp_path / "runs"
    monkeypatch.setenv("HIL_RUNS_DIR", str(runs))
    pytester.makepyfile(test_inner=INNER)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, f"expected one run directory, got {dirs}"
    return result, dirs[0]


def test_ktap_summary_on_the_terminal_and_in_the_run_dir(
        inner_run: tuple[pytest.RunResult, Path]) -> None:
    result, run = inner_run
    result.assert_outcomes(passed=2, failed=1, skipped=1, errors=1)
    ktap = (run / "ktap.txt").read_text().splitlines()
    assert ktap[:2] == ["KTAP version 1", "1..5"]
    assert "ok 1 test_inner.py::test_passes" in ktap
    assert "not ok 2 test_inner.py::test_fails" in ktap
    assert "ok 3 test_inner.py::test_skipped # SKIP needs the real board" in ktap
    assert "ok 4 test_inner.py::test_with_plot" in ktap
    assert "not ok 5 test_inner.py::test_broken_fixture" in ktap
    assert ktap[ktap.index("not ok 2 test_inner.py::test_fails") + 1] == (
        "# AssertionError: the answer is wrong")
    assert ktap[-1] == "# RuntimeError: fixture exploded"
    out = result.stdout.str()
    assert "KTAP version 1" in out and "not ok 2 test_inner.py::test_fails" in out
    assert out.index("KTAP version 1") < out.index("not ok 5")


def test_junit_xml_lists_the_failure_skip_and_artifacts(
        inner_run: tuple[pytest.RunResult, Path]) -> None:
    _, run = inner_run
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"),
            suite.get("errors")) == ("5", "1", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["test_fails"].find("failure") is not None
    skipped = cases["test_skipped"].find("skipped")
    assert skipped is not None and "needs the real board" in skipped.get("message", "")
    props = {p.get("name"): p.get("value") for p in cases["test_fails"].iter("property")}
    assert props["artifact:serial"].endswith("test_fails/serial.log")
    assert props["artifact:cbmem"].endswith("test_fails/cbmem.txt")


def test_html_report_is_self_contained_with_links(
        inner_run: tuple[pytest.RunResult, Path]) -> None:
    _, run = inner_run
    page = (run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "2 passed" in page and "1 failed" in page and "1 skipped" in page
    assert "1 error" in page
    row = re.search(r"<tr>.*?test_fails.*?</tr>", page, re.S)
    assert row and "the answer is wrong" in row.group(0)
    # artifact links are relative to the report and point at files that exist
    links = dict(re.findall(r'<a href="([^"]+)">(serial|cbmem)</a>', row.group(0)))
    assert set(links.values()) == {"serial", "cbmem"}
    for href in links:
        assert not href.startswith("/") and (run / href).is_file()
    assert "reason: needs the real board" in page
    assert "fixture exploded" in page
    # a picture artifact is linked once, with a thumbnail
    assert len(re.findall(r'<a href="[^"]*plot.png">plot<br><img src="[^"]*plot.png"', page)) == 1
    assert 'href="junit.xml"' in page


def test_no_report_option_writes_nothing(pytester: pytest.Pytester, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("HIL_RUNS_DIR", str(runs))
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess(*_plugin_args(), "--no-hil-report")
    result.assert_outcomes(passed=1)
    assert "KTAP" not in result.stdout.str()
    assert not runs.exists() or not any(runs.rglob("report.html"))
