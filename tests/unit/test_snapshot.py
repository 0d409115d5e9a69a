"""hil/wpp/snapshot.py on images assembled in Python (no C toolchain): format and verdicts.

The cross-check against images written by the firmware core itself is in
tests/firmware/test_snapshot_images.py.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from hil.wpp import snapshot as s
from hil.wpp.snapshot import SnapshotImage, Verdict, inspect

HDR = struct.Struct("<8sIIQQQ" + "QQII" * 3 + "QQQIIII")
MARK = struct.Struct("<8sQIIQII")


def build(path: Path, *, pages: int = 3, meta: bytes = b"pcb-data", regions: int = 2,
          state: int = s.MARKER_STATE_COMPLETE, seq: int = 5, marker: bool = True,
          version: int = 1) -> dict[str, int]:
    meta_off = 0x2000
    reg_off = meta_off + ((len(meta) + 0xFFF) & ~0xFFF)
    reg_raw = b"".join(
        struct.pack("<100sIQQQQQ", f"/lib/r{i}.so".encode(), 3, 0x1000 * (i + 1), 0x2000, 5,
                    0x22, 0) for i in range(regions))
    pl_off = reg_off + ((len(reg_raw) + 0xFFF) & ~0xFFF)
    pl_raw = b"".join(struct.pack("<QQ", 0x400000 + i * 4096, 0x100000 + i * 4096)
                      for i in range(pages))
    pa_off = pl_off + ((len(pl_raw) + 0xFFF) & ~0xFFF)
    page_data = b"".join(bytes([i + 1]) * 4096 for i in range(pages))
    fields = [s.SNAP_MAGIC, version, s.HEADER_SIZE, seq, 1234, 0x10000000,
              meta_off, len(meta), len(meta), zlib.crc32(meta),
              reg_off, len(reg_raw), regions, zlib.crc32(reg_raw),
              pl_off, len(pl_raw), pages, zlib.crc32(pl_raw),
              pa_off, pages, len(page_data), zlib.crc32(page_data), s.SNAP_F_PAGE_CRC, 0, 0]
    hdr = HDR.pack(*fields)
    hcrc = zlib.crc32(hdr)
    hdr = HDR.pack(*fields[:-1], hcrc)
    mk = MARK.pack(s.MARKER_MAGIC, seq, hcrc, state, 777, 0, 0)
    mk = MARK.pack(s.MARKER_MAGIC, seq, hcrc, state, 777, 0, zlib.crc32(mk))
    img = bytearray(pa_off + len(page_data) + 4096)
    img[0:len(hdr)] = hdr
    if marker:
        img[0x1000:0x1000 + len(mk)] = mk
    img[meta_off:meta_off + len(meta)] = meta
    img[reg_off:reg_off + len(reg_raw)] = reg_raw
    img[pl_off:pl_off + len(pl_raw)] = pl_raw
    img[pa_off:pa_off + len(page_data)] = page_data
    path.write_bytes(bytes(img))
    return {"meta": meta_off, "regions": reg_off, "pagelist": pl_off, "pages": pa_off}


def test_complete(tmp_path: Path) -> None:
    p = tmp_path / "img"
    build(p)
    r = inspect(p)
    assert r.verdict is Verdict.COMPLETE and r.firmware_status() == 0
    assert r.sequence == 5 and r.page_count == 3 and r.persist_time_us == 777
    with SnapshotImage(p) as img:
        assert img.metadata() == b"pcb-data"
        assert [x.file_path for x in img.regions()] == ["/lib/r0.so", "/lib/r1.so"]
        assert [x.physical_address for x in img.pages()] == [0x100000, 0x101000, 0x102000]
        assert img.page(2) == b"\x03" * 4096
        assert img.page_for_va(0x401000) == b"\x02" * 4096
    assert json.loads(r.to_json())["sections"][1]["count"] == 2


def test_no_marker_is_incomplete(tmp_path: Path) -> None:
    p = tmp_path / "img"
    build(p, marker=False)
    r = inspect(p)
    assert (r.verdict, r.check) == (Verdict.INCOMPLETE, "marker_missing")
    assert r.firmware_status() == s.STATUS_INCOMPLETE
    assert "incomplete (check marker_missing)" in r.format_text()


def test_page_corruption(tmp_path: Path) -> None:
    p = tmp_path / "img"
    off = build(p)
    raw = bytearray(p.read_bytes())
    raw[off["pages"] + 4096 + 9] ^= 1
    p.write_bytes(bytes(raw))
    r = inspect(p)
    assert (r.verdict, r.check, r.page_crc_ok) == (Verdict.CORRUPT, "page_crc", False)
    assert inspect(p, verify_pages=False).verdict is Verdict.COMPLETE


def test_consumed_and_version(tmp_path: Path) -> None:
    p = tmp_path / "img"
    build(p, state=s.MARKER_STATE_CONSUMED)
    r = inspect(p)
    assert r.consumed and r.firmware_status() == s.STATUS_CONSUMED
    assert r.firmware_status(force=True) == 0
    build(p, version=2)
    assert inspect(p).verdict is Verdict.VERSION_MISMATCH


@pytest.mark.parametrize("size", [0, 100, 0x1FFF])
def test_too_small(tmp_path: Path, size: int) -> None:
    p = tmp_path / "img"
    p.write_bytes(b"\0" * size)
    r = inspect(p)
    assert (r.verdict, r.check) == (Verdict.NO_SNAPSHOT, "too_small")
