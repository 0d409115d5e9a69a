"""Page bandwidth rows of the persist benchmark: guest memcpy as the baseline, persist and
recreate from the firmware's and the kernel's own numbers, and their ratios (pure logic;
the real guest is exercised by ``hil bench --quick``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from hil.bench import guest, persist
from hil.bench.results import BenchReport, format_table
from hil.core.errors import HilError

MIB = 2**20
DMESG = ("[   41.207311] wpp: recreated pid 65 (was 65, wpp-counter) from snapshot 3: "
         "11 regions, {pages} pages (2300 written, 260 zero, 4 skipped), 0 threads more, "
         "restore 16 ms, map 3 ms, fill {fill} (get_pages {get}), threads 40 us, total 420 ms\n")
MEMCPY_OUT = (
    "wpp-memcpy: method=memcpy size_mib=64 reps=3 gib_s=1.2000,1.6000,1.4000 "
    "median_gib_s=1.4000\n"
    "wpp-memcpy: method=movsb size_mib=64 reps=3 gib_s=0.0123,0.0123,0.0123 "
    "median_gib_s=0.0123\n"
    "wpp-memcpy: method=movsq size_mib=64 reps=3 gib_s=0.5000,0.5000,0.5000 "
    "median_gib_s=0.5000\n")


def test_parse_memcpy_keeps_every_copy_per_routine() -> None:
    got = guest.parse_memcpy(MEMCPY_OUT)
    assert got == {"memcpy": [1.2, 1.6, 1.4], "movsb": [0.0123] * 3, "movsq": [0.5] * 3}
    assert guest.memcpy_probe(64, 3) == "wpp-memcpy --size-mib 64 --reps 3 --method all"
    with pytest.raises(HilError, match="no wpp-memcpy result line"):
        guest.parse_memcpy("sh: wpp-memcpy: not found\n")


def test_parse_recreated_last_line_in_ms_or_us() -> None:
    text = DMESG.format(pages=100, fill="9 ms", get="5 ms") + \
        DMESG.format(pages=2564, fill="410 ms", get="300 ms")
    rec = guest.parse_recreated(text)
    assert rec == guest.Recreated(pages=2564, fill_ms=410.0, get_pages_ms=300.0)
    # a kernel that reports microseconds is read at that resolution
    rec = guest.parse_recreated(DMESG.format(pages=2564, fill="8250 us", get="6100 us"))
    assert rec.fill_ms == pytest.approx(8.25) and rec.get_pages_ms == pytest.approx(6.1)
    with pytest.raises(HilError, match="recreated pid"):
        guest.parse_recreated("[ 1.0] wpp: recreate refused: no snapshot\n")


def test_persist_bandwidth_is_page_bytes_over_pages_us() -> None:
    ev = {"status": 0, "page_bytes": 64 * MIB, "pages_us": 400_000, "time_us": 420_000}
    assert persist.persist_gib_s(ev) == pytest.approx(64 / 1024 / 0.4)
    # too small a copy, a failed persist or a firmware without pages_us: no sample
    assert persist.persist_gib_s({**ev, "page_bytes": 2 * MIB}) is None
    assert persist.persist_gib_s({**ev, "status": 7}) is None
    assert persist.persist_gib_s({k: v for k, v in ev.items() if k != "pages_us"}) is None
    assert persist.persist_gib_s(None) is None


def test_recreate_bandwidth_is_pages_over_fill() -> None:
    rec = guest.Recreated(pages=25_600, fill_ms=4000.0, get_pages_ms=3000.0)  # 100 MiB
    assert persist.recreate_gib_s(rec) == pytest.approx(100 / 1024 / 4.0)
    assert persist.recreate_gib_s(guest.Recreated(256, 10.0, 5.0)) is None  # 1 MiB: too small
    assert persist.recreate_gib_s(guest.Recreated(25_600, 0.0, 0.0)) is None  # below 1 ms


@dataclass
class Shell:
    out: str
    log: list[str] = field(default_factory=list)

    def run(self, cmd: str, timeout: float = 60, check: bool = True) -> SimpleNamespace:
        self.log.append(cmd)
        return SimpleNamespace(ok=True, exit_code=0, stdout=self.out, stderr="")


def _report_with_bandwidth() -> tuple[BenchReport, dict]:
    report = BenchReport(board="fake", quick=True)
    bw = persist.bandwidth_rows(report, None)
    shell = Shell(MEMCPY_OUT)
    persist.measure_memcpy(SimpleNamespace(shell=shell), report, bw[persist.MEMCPY], (64,), 3)
    assert shell.log == ["wpp-memcpy --size-mib 64 --reps 3 --method all"]
    ev = {"status": 0, "page_bytes": 8 * MIB, "pages_us": 50_000}  # 0.156 GiB/s
    persist._bandwidth_samples(ev, guest.Recreated(2048, 320.0, 250.0), bw)  # 0.0244 GiB/s
    return report, bw


def test_bandwidth_rows_ratios_against_guest_memcpy_in_table_and_json(tmp_path: Path) -> None:
    report, bw = _report_with_bandwidth()
    assert bw["guest memcpy"].samples == [1.2, 1.6, 1.4]
    rows = {r["variant"]: r for r in report.to_json()["results"]
            if r["case"] == "page bandwidth"}
    assert list(rows) == ["guest memcpy", "persist", "recreate"]
    assert all(r["bench"] == "persist" and r["unit"] == "GiB/s" and r["higher_is_better"]
               for r in rows.values())
    assert rows["guest memcpy"]["baseline"] is None
    assert rows["persist"]["baseline"] == rows["recreate"]["baseline"] == "guest memcpy"
    assert rows["persist"]["ratio"]["median"] == pytest.approx(8 / 1024 / 0.05 / 1.4)
    assert rows["recreate"]["ratio"]["median"] == pytest.approx(8 / 1024 / 0.32 / 1.4)
    table = format_table(report)
    line = next(ln for ln in table.splitlines() if "page bandwidth  recreate" in ln)
    assert "0.02x" in line and "GiB/s" in line
    assert "guest memcpy" in table and "baseline" in table
    # the other routines as a note, small values still readable
    assert "memcpy 1.4, rep movsb 0.0123, rep movsq 0.5" in table
    # where the time went, as the rows' footnotes
    assert "[2] largest: 8.0 MiB of pages, fill 320 ms, of which GET_PAGES 250 ms" in table
    assert "[1] largest: 8.0 MiB of pages in 50.0 ms of ? ms in SMM" in table
    path = report.write_json(tmp_path / "bench.json")
    assert json.loads(path.read_text())["results"][1]["ratio"] is not None


def test_bandwidth_rows_without_wpp_still_measure_memcpy() -> None:
    report = BenchReport(board="fake", quick=True, unavailable="no WPP")
    bw = persist.bandwidth_rows(report, "no WPP")
    persist.measure_memcpy(SimpleNamespace(shell=Shell(MEMCPY_OUT)), report,
                           bw[persist.MEMCPY], (64,), 3)
    assert bw["guest memcpy"].samples and report.failures() == []
    assert bw["persist"].skipped == bw["recreate"].skipped == "no WPP"


def test_unreadable_kernel_report_and_old_firmware_say_why() -> None:
    report = BenchReport(board="fake", quick=True)
    bw = persist.bandwidth_rows(report, None)
    persist._bandwidth_samples({"status": 0, "page_bytes": 8 * MIB, "time_us": 9},
                               "no 'wpp: recreated pid' line", bw)
    assert bw["persist"].skipped is not None and "pages_us" in bw["persist"].skipped
    assert bw["recreate"].skipped == "no 'wpp: recreated pid' line"
    # memcpy was never run here: an empty row without a reason counts as failed too
    assert {m.variant for m in report.failures()} == {"guest memcpy", "persist", "recreate"}


def test_the_power_loss_check_is_read_from_sysfs() -> None:
    from types import SimpleNamespace

    from hil.bench.persist import _read_check

    text = ("checks 3\nfailed 0\npages_added 2048\npages_removed 2048\nregions_added 0\n"
            "regions_removed 0\nlast_pages 2478\nlast_regions 12\nlast_corrected 4096\n"
            "last_us 142311\ntrack_errors 0\n")
    shell = SimpleNamespace(run=lambda *a, **k: SimpleNamespace(stdout=text, exit_code=0))
    got = _read_check(SimpleNamespace(shell=shell))
    assert got["last_us"] == 142311 and got["last_corrected"] == 4096
    missing = SimpleNamespace(run=lambda *a, **k: SimpleNamespace(stdout="", exit_code=1))
    assert _read_check(SimpleNamespace(shell=missing)) == {}
