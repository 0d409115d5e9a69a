"""Damaged snapshots are refused with the right reason and leave nothing behind.

One process is persisted and the twin booted once; then each case damages the snapshot
in the persistent-device file while the twin runs (the file is QEMU's shared mapping of
the device, so the firmware reads the damage at its next RESTORE, as it would after a
cut during persisting or a bit flip on the medium), expects the recreator's message, the
same line in the kernel log, the firmware's ``wpp: restore ... check=`` naming the same
check as ``hil snapshot inspect``, no process left behind, and puts the bytes back. The
last case recreates the restored snapshot: the refusals consumed nothing.

Flipped bytes are covered in the header, the metadata (process control block), the
region list and a page; twin only (the lab board's device is not a host file).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from counter_probe import Probe
from twin_only import inspect_cli, require_twin

from hil.wpp import snapshot
from hil.wpp.session import WppSession

HDR_FORMAT_VERSION = 8
HDR_TIMESTAMP = 24
HDR_SECTIONS = 40  # 3 x {u64 offset, u64 length, u32 count, u32 crc32}
HDR_SIZE = snapshot.HEADER_SIZE
HDR_CRC = HDR_SIZE - 4
MARKER = snapshot.MARKER_OFFSET
MARKER_SIZE = snapshot.MARKER_SIZE

CORRUPT = "snapshot corrupt: a checksum does not match"
# kind -> (recreator/kernel message, inspector verdict, inspector check)
DAMAGE = {
    "no_snapshot": ("no snapshot on the persistent device", "no_snapshot", "no_header"),
    "incomplete": ("snapshot incomplete: its completion marker is missing", "incomplete",
                   "marker_missing"),
    "format_version": ("snapshot format version not supported by the firmware",
                       "version_mismatch", "format_version"),
    "flip_header": (CORRUPT, "corrupt", "header_crc"),
    "flip_metadata": (CORRUPT, "corrupt", "section_crc"),
    "flip_regions": (CORRUPT, "corrupt", "section_crc"),
    "flip_page": (CORRUPT, "corrupt", "page_crc"),
    "pcb_version": ("process control block version 99", "complete", ""),
}


def _read(pdev: Path, offset: int, size: int) -> bytes:
    with pdev.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _patch(pdev: Path, offset: int, data: bytes) -> None:
    with pdev.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def _section(pdev: Path, index: int) -> tuple[int, int]:
    off, length, _count, _crc = struct.unpack_from(
        "<QQII", _read(pdev, HDR_SECTIONS + 24 * index, 24))
    return off, length


def _flip(pdev: Path, offset: int, size: int = 8) -> None:
    _patch(pdev, offset, bytes(b ^ 0x5A for b in _read(pdev, offset, size)))


def _reseal(pdev: Path, section: int) -> None:
    """Recompute a section's CRC, the header CRC and the marker (as a valid persist would)."""
    off, length = _section(pdev, section)
    _patch(pdev, HDR_SECTIONS + 24 * section + 20,
           struct.pack("<I", zlib.crc32(_read(pdev, off, length))))
    hdr = bytearray(_read(pdev, 0, HDR_SIZE))
    hdr[HDR_CRC:HDR_CRC + 4] = b"\0" * 4
    hcrc = zlib.crc32(bytes(hdr))
    _patch(pdev, HDR_CRC, struct.pack("<I", hcrc))
    marker = bytearray(_read(pdev, MARKER, MARKER_SIZE))
    marker[16:20] = struct.pack("<I", hcrc)
    marker[36:40] = b"\0" * 4
    _patch(pdev, MARKER + 16, struct.pack("<I", hcrc))
    _patch(pdev, MARKER + 36, struct.pack("<I", zlib.crc32(bytes(marker))))


def _damage(pdev: Path, kind: str) -> list[tuple[int, bytes]]:
    """Damage the snapshot; returns what to write back to undo it."""
    assert _read(pdev, 0, 8) == snapshot.SNAP_MAGIC, "no snapshot header on the device"
    report = snapshot.inspect(pdev, verify_pages=False)
    page_area = report.page_area_offset or 0
    mid_page = page_area + (report.page_count or 1) // 2 * 4096 + 1234
    meta, _ = _section(pdev, 0)
    regions, reg_len = _section(pdev, 1)
    undo = [(0, _read(pdev, 0, 2 * 4096)), (meta, _read(pdev, meta, 4096)),
            (regions, _read(pdev, regions, reg_len)), (mid_page, _read(pdev, mid_page, 8))]
    if kind == "no_snapshot":
        _patch(pdev, 0, b"\0" * (2 * 4096))
    elif kind == "incomplete":  # what a cut while persisting leaves: no completion marker
        _patch(pdev, MARKER, b"\0" * MARKER_SIZE)
    elif kind == "format_version":
        _patch(pdev, HDR_FORMAT_VERSION, struct.pack("<I", 99))
    elif kind == "flip_header":
        _flip(pdev, HDR_TIMESTAMP)
    elif kind == "flip_metadata":
        _flip(pdev, meta + 200)
    elif kind == "flip_regions":
        _flip(pdev, regions + reg_len // 2)
    elif kind == "flip_page":
        _flip(pdev, mid_page)
    elif kind == "pcb_version":  # a validly sealed snapshot whose PCB is from the future
        _patch(pdev, meta + 4, struct.pack("<H", 99))
        _reseal(pdev, 0)
    else:
        raise AssertionError(kind)
    return undo


@pytest.fixture(scope="module")
def persisted(target: Any) -> Iterator[Probe]:
    """One counter persisted, the power cut and the twin booted again (not recreated)."""
    require_twin(target, "damaging the snapshot in the persistent-device file")
    target.ensure_booted()
    session = WppSession(target)
    session.require()
    probe = Probe(session, name="damage")
    probe.persist()
    probe.boot()
    try:
        yield probe
    finally:
        session.cleanup()


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_refuses_damaged_snapshot(persisted: Probe, target: Any, kind: str) -> None:
    pdev = require_twin(target, "damaging the snapshot").pdev
    message, verdict, check = DAMAGE[kind]
    before = persisted.kernel_said(message)
    undo = _damage(pdev, kind)
    try:
        rc, report = inspect_cli(pdev)
        assert report["verdict"] == verdict, report
        assert report["check"] == check, report
        assert rc == (0 if verdict == "complete" else 1)
        res = persisted.recreate()
        persisted.assert_refused(res, message)
        assert persisted.kernel_said(message) == before + 1
        if check:  # the firmware itself refused: its log names the same check
            restores = persisted.wpp.events("restore")
            assert restores, "no 'wpp: restore' line in cbmem -c"
            assert restores[-1]["status"] != 0
            assert restores[-1]["check"] == check, restores[-1]
    finally:
        for off, data in undo:
            _patch(pdev, off, data)


def test_undamaged_snapshot_still_recreates(persisted: Probe, target: Any) -> None:
    pdev = require_twin(target, "reading the snapshot offline").pdev
    rc, report = inspect_cli(pdev)
    assert rc == 0 and report["verdict"] == "complete" and not report["consumed"], report
    persisted.assert_continues(persisted.recreate())
    persisted.stop()
    _, report = inspect_cli(pdev, no_pages=True)
    assert report["consumed"], "a recreated snapshot must be marked consumed"
