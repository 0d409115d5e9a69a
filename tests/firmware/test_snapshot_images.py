"""hil/wpp/snapshot.py against images written by the real firmware core (host platform).

The reader's verdict must agree with the firmware's own restore decision on the same
image, for complete, cut-off (power loss), corrupted, consumed and foreign images.
"""

from __future__ import annotations

import json
import random
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from hil.core.errors import HilError
from hil.wpp import snapshot
from hil.wpp.snapshot import SnapshotImage, Verdict, inspect

VBASE = 0x7F0000000000
REPO = Path(__file__).resolve().parents[2]


def make_image(tool: Path, path: Path, *args: str) -> int:
    proc = subprocess.run([str(tool), "make-image", str(path), *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = re.match(r"status=(\d+) total_bytes=(\d+)", proc.stdout)
    assert m, proc.stdout
    return int(m.group(2))


def firmware_restore(tool: Path, path: Path, force: bool = False) -> int:
    proc = subprocess.run([str(tool), "restore", str(path), *(["--force"] if force else [])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return int(re.match(r"status=(\d+)", proc.stdout).group(1))


def expected_page(seed: int, i: int) -> bytes:
    return bytes((seed * 131 + i * 31 + k * 7 + (k >> 8)) & 0xFF for k in range(4096))


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def test_complete_image_contents(host_tool: Path, tmp_path: Path) -> None:
    img = tmp_path / "pdev.img"
    make_image(host_tool, img, "--pages", "200", "--regions", "5", "--meta", "5000",
               "--seed", "9")
    r = inspect(img)
    assert r.verdict is Verdict.COMPLETE and r.check == ""
    assert r.firmware_status() == 0 == firmware_restore(host_tool, img)
    assert r.page_count == 200 and r.sequence == 1 and r.marker_state == "complete"
    assert r.region_base == 0x10000000 and r.page_crc_present and r.page_crc_ok
    assert [s.name for s in r.sections] == ["metadata", "regions", "pagelist"]
    assert all(s.crc_ok for s in r.sections)
    with SnapshotImage(img) as s:
        assert s.metadata() == bytes((9 + k) & 0xFF for k in range(5000))
        regions = s.regions()
        assert [x.virtual_address for x in regions] == [VBASE + i * 0x10000000 for i in range(5)]
        assert regions[0].file_path == "/usr/lib/file0.so" and regions[1].file_path == ""
        assert regions[2].file_offset == 2 * 4096 and regions[3].protection == 3
        pages = s.pages()
        assert sorted(p.virtual_address for p in pages) == [VBASE + i * 4096 for i in range(200)]
        # page list is in physical order (coalescing); contents follow their VA
        assert [p.physical_address for p in pages] == sorted(p.physical_address for p in pages)
        for p in pages[:: 7]:
            i = (p.virtual_address - VBASE) // 4096
            assert s.page(p.index) == expected_page(9, i)
        assert s.page_for_va(VBASE + 4096 * 17) == expected_page(9, 17)
        with pytest.raises(HilError):
            s.page(200)
    d = json.loads(r.to_json())
    assert d["verdict"] == "complete" and d["firmware_status"] == 0 and d["page_count"] == 200
    text = r.format_text()
    assert "verdict:   complete" in text and "pagelist" in text


def test_power_cut_images_are_refused_by_both(host_tool: Path, tmp_path: Path) -> None:
    img = tmp_path / "pdev.img"
    total = make_image(host_tool, img, "--pages", "64", "--meta", "3000")
    rng = random.Random(7)
    cuts = sorted({0, 1, 39, 40, 41, 4096, total - 41, total - 40, total - 1,
                   *(rng.randrange(total) for _ in range(25))})
    for cut in cuts:
        make_image(host_tool, img, "--pages", "64", "--meta", "3000", "--cut", str(cut))
        r = inspect(img)
        fw = firmware_restore(host_tool, img)
        assert r.verdict is not Verdict.COMPLETE, f"cut at {cut}/{total} accepted"
        assert fw != 0
        assert r.firmware_status() == fw, f"cut {cut}: reader {r.check} vs firmware {fw}"
    make_image(host_tool, img, "--pages", "64", "--meta", "3000", "--cut", str(total))
    assert inspect(img).verdict is Verdict.COMPLETE


@pytest.mark.parametrize(
    ("where", "verdict", "check"),
    [
        ("page", Verdict.CORRUPT, "page_crc"),
        ("metadata", Verdict.CORRUPT, "section_crc"),
        ("regions", Verdict.CORRUPT, "section_crc"),
        ("pagelist", Verdict.CORRUPT, "section_crc"),
        ("header", Verdict.CORRUPT, "header_crc"),
        ("marker", Verdict.INCOMPLETE, "marker_crc"),
    ],
)
def test_corruption_detected_like_firmware(host_tool: Path, tmp_path: Path, where: str,
                                           verdict: Verdict, check: str) -> None:
    img = tmp_path / "pdev.img"
    make_image(host_tool, img, "--pages", "40")
    r0 = inspect(img)
    offsets = {s.name: s.offset + 5 for s in r0.sections}
    offsets.update(page=(r0.page_area_offset or 0) + 3 * 4096 + 11, header=24,
                   marker=snapshot.MARKER_OFFSET + 20)
    flip(img, offsets[where])
    r = inspect(img)
    assert (r.verdict, r.check) == (verdict, check)
    if check == "section_crc":
        assert r.check_section == where
    assert r.firmware_status() == firmware_restore(host_tool, img)


def test_consumed_and_version(host_tool: Path, tmp_path: Path) -> None:
    img = tmp_path / "pdev.img"
    make_image(host_tool, img, "--pages", "8", "--consume")
    r = inspect(img)
    assert r.verdict is Verdict.COMPLETE and r.consumed
    assert r.firmware_status() == snapshot.STATUS_CONSUMED == firmware_restore(host_tool, img)
    assert r.firmware_status(force=True) == 0 == firmware_restore(host_tool, img, force=True)
    # bump the format version: checked before any CRC, so it is a version mismatch
    raw = bytearray(img.read_bytes()[: 0x2000])
    raw[8:12] = (2).to_bytes(4, "little")
    raw[snapshot.HEADER_SIZE - 4: snapshot.HEADER_SIZE] = b"\0\0\0\0"
    with open(img, "r+b") as f:
        f.write(raw[: snapshot.HEADER_SIZE])
    r = inspect(img)
    assert (r.verdict, r.check) == (Verdict.VERSION_MISMATCH, "format_version")
    assert r.firmware_status() == snapshot.STATUS_VERSION == firmware_restore(host_tool, img)


def test_blank_and_tiny_images(host_tool: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * 65536)
    r = inspect(blank)
    assert (r.verdict, r.check) == (Verdict.NO_SNAPSHOT, "no_header")
    assert firmware_restore(host_tool, blank) == snapshot.STATUS_NO_SNAPSHOT
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"WPPSNAP1")
    assert inspect(tiny).check == "too_small"
    with pytest.raises(HilError) as e:
        inspect(tmp_path / "missing.img")
    assert e.value.hint


def test_reader_constants_match_c_header() -> None:
    h = (REPO / "firmware" / "wpp" / "include" / "wpp_abi.h").read_text()

    def define(name: str) -> str:
        m = re.search(rf"#define {name}\s+(\S+)", h)
        assert m, name
        return m.group(1)

    assert define("WPP_SNAP_MAGIC") == '"WPPSNAP1"' and define("WPP_MARKER_MAGIC") == '"WPPDONE!"'
    assert int(define("WPP_SNAP_MARKER_OFFSET").rstrip("U"), 0) == snapshot.MARKER_OFFSET
    assert int(define("WPP_SNAP_DATA_OFFSET").rstrip("U"), 0) == snapshot.DATA_OFFSET
    assert int(define("WPP_SNAP_FORMAT_VERSION"), 0) == snapshot.SNAP_FORMAT_VERSION
    assert 'sizeof(struct wpp_snapshot_header) == 152' in h and snapshot.HEADER_SIZE == 152
    assert 'sizeof(struct wpp_snapshot_marker) == 40' in h and snapshot.MARKER_SIZE == 40
    assert 'sizeof(struct wpp_region) == 144' in h and snapshot.REGION_SIZE == 144
    for name, value in [("WPP_E_NO_SNAPSHOT", 14), ("WPP_E_INCOMPLETE", 15),
                        ("WPP_E_CORRUPT", 16), ("WPP_E_VERSION", 17), ("WPP_E_CONSUMED", 18)]:
        assert re.search(rf"{name}\s*=\s*{value},", h), name


def test_pages_without_crc_refused_like_the_firmware(host_tool: Path, tmp_path: Path) -> None:
    """A header without the page-CRC flag (the firmware used to write one when it could
    not map a page for the CPU) is refused by the inspector and by the firmware alike,
    even with every other CRC resealed: unverified pages are never accepted."""
    img = tmp_path / "pdev.img"
    make_image(host_tool, img, "--pages", "20", "--seed", "3")
    assert inspect(img).verdict is Verdict.COMPLETE
    with open(img, "r+b") as f:
        hraw = bytearray(f.read(snapshot.HEADER_SIZE))
        f.seek(snapshot.MARKER_OFFSET)
        mraw = bytearray(f.read(snapshot.MARKER_SIZE))
        flags_off = snapshot.HEADER_SIZE - 12  # flags, reserved, header_crc32
        struct.pack_into("<I", hraw, flags_off, 0)
        struct.pack_into("<I", hraw, flags_off - 4, 0)  # page_crc32
        struct.pack_into("<I", hraw, snapshot.HEADER_SIZE - 4, 0)
        hcrc = zlib.crc32(bytes(hraw))
        struct.pack_into("<I", hraw, snapshot.HEADER_SIZE - 4, hcrc)
        struct.pack_into("<I", mraw, 16, hcrc)  # marker.header_crc32
        struct.pack_into("<I", mraw, snapshot.MARKER_SIZE - 4, 0)
        struct.pack_into("<I", mraw, snapshot.MARKER_SIZE - 4, zlib.crc32(bytes(mraw)))
        f.seek(0)
        f.write(hraw)
        f.seek(snapshot.MARKER_OFFSET)
        f.write(mraw)
    r = inspect(img)
    assert not r.page_crc_present
    assert (r.verdict, r.check) == (Verdict.CORRUPT, "page_crc_missing")
    assert r.firmware_status() == 16 == firmware_restore(host_tool, img)
