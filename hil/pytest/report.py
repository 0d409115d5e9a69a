"""pytest plugin (entry point ``hil_report``): every run leaves JUnit XML, HTML and KTAP.

A bench run is judged after the fact, often by someone who was not watching: each
pytest session writes into its run directory (``runs/<timestamp>/``, `hil.core.runs`)

* ``junit.xml``: pytest's own JUnit XML (unless ``--junitxml`` points elsewhere), with
  each captured artifact as a ``<property name="artifact:LABEL">``;
* ``report.html``: one self-contained page (inline CSS, no scripts, no network):
  outcome, duration, failure text and links to the artifacts of each test;
* ``ktap.txt`` and the end of the terminal output: a KTAP summary (``KTAP version 1``,
  ``1..N``, ``ok 1 name``, ``not ok 2 name``, ``ok 3 name # SKIP reason``), the format
  kernel test tooling reads.

Artifacts come from the ``hil artifacts`` report section the `hil.pytest.plugin` target
fixture adds to a failing test (``label: path`` lines: serial log, ``cbmem -c``, dmesg,
screenshot) and from ``artifact:LABEL`` user properties a test adds itself, e.g.
``request.node.user_properties.append(("artifact:plot", path))`` for a benchmark plot.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARTIFACT_SECTION = "hil artifacts"
_KEY = pytest.StashKey["_Collector"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil-report", "wpp-hil run reports")
    group.addoption("--hil-report-dir", default=None, metavar="DIR",
                    help="where junit.xml, report.html and ktap.txt go "
                         "(default: the run directory runs/<timestamp>/)")
    group.addoption("--no-hil-report", action="store_true",
                    help="write no HTML/KTAP report and no default JUnit XML")


@dataclass
class _Result:
    nodeid: str
    outcome: str = "passed"  # passed | failed | error | skipped | xfailed | xpassed
    duration: float = 0.0
    reason: str = ""
    longrepr: str = ""
    message: str = ""  # first line of the first failure's crash message
    artifacts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)


def _parse_artifacts(text: str) -> list[tuple[str, str]]:
    """``label: path`` lines of the artifact section (other lines ignored)."""
    out = []
    for line in text.splitlines():
        label, sep, path = line.partition(": ")
        if sep and path.strip() and not label.startswith(" "):
            out.append((label.strip(), path.strip()))
    return out


def _skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        reason = str(lr[2])
        return reason.removeprefix("Skipped: ")
    return str(getattr(report, "wasxfail", "") or lr or "")


class _Collector:
    """Accumulates one `_Result` per test id across setup/call/teardown."""

    def __init__(self, config: pytest.Config, out_dir: Path) -> None:
        self.config = config
        self.out_dir = out_dir
        self.results: dict[str, _Result] = {}
        self.started = time.time()
        self.written: dict[str, Path] = {}

    def add(self, report: pytest.TestReport) -> None:
        r = self.results.setdefault(report.nodeid, _Result(report.nodeid))
        r.duration += report.duration
        for title, content in report.sections:
            if title == ARTIFACT_SECTION:
                for item in _parse_artifacts(content):
                    if item not in r.artifacts:
                        r.artifacts.append(item)
            elif content.strip() and (title, content) not in r.sections:
                r.sections.append((title, content))
        for name, value in report.user_properties:
            if str(name).startswith("artifact:"):
                item = (str(name).partition(":")[2] or Path(str(value)).name, str(value))
                if item not in r.artifacts:
                    r.artifacts.append(item)
        xfail = hasattr(report, "wasxfail")
        if report.skipped:
            if r.outcome == "passed":
                r.outcome = "xfailed" if xfail else "skipped"
                r.reason = _skip_reason(report)
        elif report.failed:
            new = "failed" if report.when == "call" else "error"
            if r.outcome not in ("failed", "error"):
                r.outcome = new
            crash = getattr(report.longrepr, "reprcrash", None)
            if not r.message:
                r.message = (str(getattr(crash, "message", "")) or report.when).splitlines()[0]
            r.longrepr += (f"[{report.when}] " if report.when != "call" else "") + \
                str(report.longreprtext) + "\n"
        elif report.when == "call" and xfail:
            r.outcome = "xpassed"
            r.reason = str(report.wasxfail)


    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Any:
        """Outermost wrapper: sees the artifact section other plugins added, and turns it
        into ``artifact:LABEL`` user properties of the test (JUnit writes those from the
        test's last report, so they go on the item, not only on this report)."""
        outcome = yield
        report = outcome.get_result()
        for title, content in report.sections:
            if title != ARTIFACT_SECTION:
                continue
            for label, path in _parse_artifacts(content):
                prop = (f"artifact:{label}", path)
                if prop not in item.user_properties:
                    item.user_properties.append(prop)
                if prop not in report.user_properties:
                    report.user_properties.append(prop)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.written = self.write()
        terminalreporter.section("KTAP summary")
        for line in self.written["ktap_lines"].read_text().splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line("reports: " + ", ".join(
            str(p) for k, p in self.written.items() if k != "ktap_lines"))

    def write(self) -> dict[str, Path]:
        """Write ``ktap.txt`` and ``report.html``; returns their paths (and JUnit's)."""
        results = list(self.results.values())
        out = self.out_dir
        ktap = out / "ktap.txt"
        ktap.write_text("\n".join(ktap_lines(results)) + "\n")
        xml = getattr(self.config.option, "xmlpath", None)
        junit = Path(xml).resolve() if xml else None
        page = out / "report.html"
        page.write_text(render_html(results, out, title=f"wpp-hil test run {out.name}",
                                    duration=time.time() - self.started, junit=junit))
        written = {"html": page, "ktap_lines": ktap}
        if junit is not None:
            written["junit"] = junit
        return written


def _ktap_name(nodeid: str) -> str:
    """KTAP names must not carry '#' (directive) or newlines."""
    return nodeid.replace("#", "_").replace("\n", " ")


def ktap_lines(results: list[_Result]) -> list[str]:
    lines = ["KTAP version 1", f"1..{len(results)}"]
    for i, r in enumerate(results, 1):
        ok = "not ok" if r.outcome in ("failed", "error") else "ok"
        line = f"{ok} {i} {_ktap_name(r.nodeid)}"
        if r.outcome == "skipped":
            line += f" # SKIP {r.reason}".rstrip()
        elif r.outcome == "xfailed":
            line += f" # XFAIL {r.reason}".rstrip()
        lines.append(line.replace("\n", " "))
        if ok == "not ok":
            lines.append(f"# {r.message or r.outcome}")
    return lines


def _href(path: str, base: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        return os.path.relpath(p, base)
    except ValueError:
        return p.as_uri()


_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#eee}pre{white-space:pre-wrap;margin:0;
font-size:12px;max-height:40em;overflow:auto}.passed,.xfailed{color:#186a18}.failed,.error,
.xpassed{color:#a00;font-weight:bold}.skipped{color:#8a6d00}.sum span{margin-right:1.2em}"""


_IMAGES = (".png", ".jpg", ".jpeg")


def _artifact_link(label: str, path: str, base: Path) -> str:
    """A link to the artifact; pictures (screenshot, plots) also as a thumbnail."""
    href = html.escape(_href(path, base))
    thumb = (f'<br><img src="{href}" alt="{html.escape(label)}" width="240">'
             if path.lower().endswith(_IMAGES) else "")
    return f'<a href="{href}">{html.escape(label)}{thumb}</a>'


def render_html(results: list[_Result], out_dir: Path, *, title: str, duration: float,
                junit: Path | None) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    e = html.escape
    rows = []
    for i, r in enumerate(results, 1):
        links = "<br>".join(_artifact_link(label, p, out_dir) for label, p in r.artifacts)
        detail = ""
        if r.longrepr:
            detail += f"<details open><summary>failure</summary><pre>{e(r.longrepr)}</pre>" \
                      "</details>"
        for t, c in r.sections:
            detail += f"<details><summary>{e(t)}</summary><pre>{e(c)}</pre></details>"
        if r.reason:
            detail = f"<div>reason: {e(r.reason)}</div>" + detail
        rows.append(f'<tr><td>{i}</td><td class="{r.outcome}">{r.outcome}</td>'
                    f"<td>{e(r.nodeid)}</td><td>{r.duration:.2f} s</td><td>{detail}</td>"
                    f"<td>{links}</td></tr>")
    summary = "".join(f'<span class="{k}">{v} {k}</span>' for k, v in sorted(counts.items()))
    junit_link = (f' &middot; <a href="{e(_href(str(junit), out_dir))}">JUnit XML</a>'
                  if junit else "")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
            f'<p class="sum">{summary} &middot; {len(results)} tests in {duration:.1f} s'
            f"{junit_link}</p><table><tr><th>#</th><th>outcome</th><th>test</th>"
            f"<th>duration</th><th>details</th><th>artifacts</th></tr>"
            + "\n".join(rows) + "</table></body></html>\n")


def _out_dir(config: pytest.Config) -> Path:
    given = config.getoption("--hil-report-dir")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    from hil.core.runs import current_run

    return current_run()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Runs before the junitxml plugin's configure, so a default ``--junitxml`` applies."""
    if config.getoption("--no-hil-report") or hasattr(config, "workerinput"):
        return
    if config.getoption("help", False) or config.getoption("version", 0) \
            or config.getoption("collectonly", False):
        return  # nothing runs: no run directory, no report
    out = _out_dir(config)
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(out / "junit.xml")
    collector = _Collector(config, out)
    config.stash[_KEY] = collector
    config.pluginmanager.register(collector, "hil-report-collector")
