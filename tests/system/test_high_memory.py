"""Tracked pages above 4 GiB are persisted, checksummed and recreated (issue 12, item 3).

Most of the lab board's RAM lies above 4 GiB. The twin's 32-bit SMM handler reaches such
frames through a PAE window whose page tables live in SMRAM (firmware/README.md); the
FPGA board moves them by DMA and CRCs a read-back. This module needs a target with System
RAM above 4 GiB: on a twin without it (2 GiB, the default inventory so far) it boots a
private 3 GiB / 2-vCPU twin with the session's ROM (q35 then puts 1 GiB above 4 GiB).

Linux hands user pages out of ZONE_NORMAL (above 4 GiB on x86-64) before ZONE_DMA32, so a
fresh counter's buffer lands up there; the test proves it from /proc/<pid>/pagemap rather
than assuming it, persists, cuts power, boots, recreates and checks the buffer byte-exactly
(sha256 through /proc/<pid>/mem) and the snapshot offline: complete, a CRC over every page
(the page CRC flag and a verified page area), and the high frames in its page list.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from counter_probe import Probe
from twin_only import assert_complete_snapshot, optional_twin, twin_shaped

from hil.drivers.cbmem import parse_log
from hil.wpp import snapshot

pytestmark = pytest.mark.twin

FOUR_GIB = 1 << 32
PAGE = 4096
BUFFER_MIB = 64
PFN_MASK = (1 << 55) - 1
PAGE_PRESENT = 1 << 63


def _high_ram(target: Any) -> list[tuple[int, int]]:
    """System RAM ranges of /proc/iomem (top level) that lie above 4 GiB."""
    out = []
    for line in target.shell.run("cat /proc/iomem", timeout=30).stdout.splitlines():
        if line.startswith(" ") or not line.rstrip().endswith(": System RAM"):
            continue
        lo, hi = (int(x, 16) for x in line.split(":")[0].strip().split("-"))
        if hi >= FOUR_GIB:
            out.append((max(lo, FOUR_GIB), hi + 1))
    return out


@pytest.fixture(scope="module")
def target(target: Any, twin_rom: Path) -> Iterator[Any]:
    """The session's target if it has RAM above 4 GiB, else a private 3 GiB/2-vCPU twin."""
    target.ensure_booted()  # a previous module may have left it off
    t0 = time.monotonic()
    with twin_shaped(target, twin_rom, "high-memory", _high_ram(target), memory_mib=3072,
                     smp=2) as big:
        print(f"target ready in {time.monotonic() - t0:.1f} s")
        yield big


@pytest.fixture(scope="module")
def high(target: Any) -> list[tuple[int, int]]:
    ranges = _high_ram(target)
    if not ranges:
        pytest.skip(f"target '{target.board.name}' has no System RAM above 4 GiB")
    return ranges


def _num(value: Any) -> int:
    """A log field as a number: an int already, or hex text ('0x80000000:0x600000' -> base)."""
    return value if isinstance(value, int) else int(str(value).split(":")[0], 0)


def _frames(probe: Probe, addr: int, length: int) -> list[int]:
    """Physical address of every page of [addr, addr + length) of the counter, from its
    pagemap (read as root: PFNs are shown to CAP_SYS_ADMIN only); 0 = not present."""
    npages = length // PAGE
    res = probe.run(
        f"kill -STOP {probe.pid}; dd if=/proc/{probe.pid}/pagemap bs=8 skip={addr // PAGE} "
        f"count={npages} 2>/dev/null | od -An -v -tx1; kill -CONT {probe.pid}", timeout=120)
    raw = bytes(int(b, 16) for b in res.stdout.split())
    assert len(raw) == 8 * npages, f"pagemap: {len(raw)} bytes for {npages} pages"
    out = []
    for (entry,) in struct.iter_unpack("<Q", raw):
        out.append((entry & PFN_MASK) * PAGE if entry & PAGE_PRESENT else 0)
    return out


def test_iomem_shows_ram_above_4gib(target: Any, high: list[tuple[int, int]]) -> None:
    """The OS owns RAM above 4 GiB, and the firmware recorded it and set up its window."""
    assert sum(hi - lo for lo, hi in high) >= 512 << 20, high
    log = parse_log(target.shell.run("cbmem -c", timeout=60).stdout)
    guard = [e for e in log.events if e.name == "guard" and e.get("status") == 0]
    assert guard, "no 'wpp: guard status=0' line"
    if target.is_emulated:
        paging = [e for e in log.events if e.name == "smm_paging"]
        assert paging and paging[-1].get("status") == 0, paging
        win = _num(paging[-1]["window"])
        assert _num(guard[-1]["ram_top"]) <= win < FOUR_GIB, (paging[-1], guard[-1])


def test_high_frames_persisted_and_recreated(wpp: Any, target: Any,
                                             high: list[tuple[int, int]]) -> None:
    """A counter whose buffer lies (mostly) above 4 GiB: snapshot with a CRC over every
    page, the high frames in its page list, the buffer byte-exact after recreation."""
    probe = Probe(wpp, mode="batched", buffer_mib=BUFFER_MIB, name="high", verify_every=5)
    frames = _frames(probe, probe.buf_addr, BUFFER_MIB << 20)
    above = [pa for pa in frames if pa >= FOUR_GIB]
    assert all(any(lo <= pa < hi for lo, hi in high) for pa in above)
    assert len(above) >= len(frames) // 4, (
        f"only {len(above)} of {len(frames)} buffer pages above 4 GiB: the test would not "
        "exercise the firmware's high mapping")
    print(f"{len(above)} of {len(frames)} buffer pages above 4 GiB")
    before = probe.buffer_sha256()
    probe.persist()
    twin = optional_twin(target, "reading the snapshot offline")
    if twin is not None:
        assert_complete_snapshot(twin.pdev, BUFFER_MIB * 256)
        rep = snapshot.inspect(twin.pdev, verify_pages=True)
        assert rep.verdict is snapshot.Verdict.COMPLETE, rep.format_text()
        assert rep.page_crc_ok is True, rep.format_text()
        with snapshot.SnapshotImage(twin.pdev) as img:
            pas = {p.physical_address for p in img.pages()}
        missing = [pa for pa in above if pa not in pas]
        assert not missing, f"{len(missing)} high frames not in the snapshot's page list"
        log = twin.debugcon.read_text(errors="replace")
        persist = re.findall(r"^wpp: persist status=0 .*$", log, re.M)
        assert persist, "no 'wpp: persist status=0' line on debugcon"
        assert " readback_pages=0 " in persist[-1], persist[-1]
        print(persist[-1])
    probe.boot()
    res = probe.recreate()
    probe.assert_continues(res)
    assert probe.buffer_sha256() == before, "the recreated buffer differs"
    print(res.stdout.strip())
    probe.stop()
