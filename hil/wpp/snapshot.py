"""Offline reader of WPP snapshots on a persistent-device image file.

The firmware (firmware/wpp/src/core.c) writes the format described in
``firmware/wpp/include/wpp_abi.h``; this module parses it WITHOUT the firmware so a test
or a human can see what a power-loss persist left behind: header, sections and their
CRCs, the completion marker, and a verdict that mirrors the firmware's restore checks in
the same order (so "the reader says corrupt" means "the firmware would refuse with
WPP_E_CORRUPT"). Tests (ours and the kernel helper's) read regions, the page list,
metadata and page contents through `SnapshotImage`.
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hil.core.errors import HilError

# --- constants mirrored from wpp_abi.h (checked by tests against the C header) ---
SNAP_MAGIC = b"WPPSNAP1"
MARKER_MAGIC = b"WPPDONE!"
SNAP_FORMAT_VERSION = 1
HEADER_OFFSET = 0x0000
MARKER_OFFSET = 0x1000
DATA_OFFSET = 0x2000
PAGE_SIZE = 4096
MARKER_STATE_COMPLETE = 1
MARKER_STATE_CONSUMED = 2
SNAP_F_PAGE_CRC = 1 << 0
METADATA_SIZE = 0x02000000
REGIONS_SIZE = 0x03000000
PAGES_SIZE = 0x08000000
SECTION_NAMES = ("metadata", "regions", "pagelist")

_HEADER = struct.Struct("<8sIIQQQ" + "QQII" * 3 + "QQQIIII")
_MARKER = struct.Struct("<8sQIIQII")
_REGION = struct.Struct("<100sIQQQQQ")
_PAGE = struct.Struct("<QQ")
HEADER_SIZE = _HEADER.size  # 152
MARKER_SIZE = _MARKER.size  # 40
REGION_SIZE = _REGION.size  # 144
PAGE_MAPPING_SIZE = _PAGE.size  # 16
REGION_SLOTS = REGIONS_SIZE // REGION_SIZE
_HEADER_CRC_OFFSET = HEADER_SIZE - 4
_MARKER_CRC_OFFSET = MARKER_SIZE - 4

# Firmware status codes (enum wpp_status) for the verdicts.
STATUS_OK = 0
STATUS_NO_SNAPSHOT = 14
STATUS_INCOMPLETE = 15
STATUS_CORRUPT = 16
STATUS_VERSION = 17
STATUS_CONSUMED = 18


class Verdict(enum.Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    CORRUPT = "corrupt"
    NO_SNAPSHOT = "no_snapshot"
    VERSION_MISMATCH = "version_mismatch"

    @property
    def status(self) -> int:
        """The firmware's restore status for this verdict (ignoring consumed)."""
        return {
            Verdict.COMPLETE: STATUS_OK,
            Verdict.INCOMPLETE: STATUS_INCOMPLETE,
            Verdict.CORRUPT: STATUS_CORRUPT,
            Verdict.NO_SNAPSHOT: STATUS_NO_SNAPSHOT,
            Verdict.VERSION_MISMATCH: STATUS_VERSION,
        }[self]


@dataclass(frozen=True)
class SectionInfo:
    name: str
    offset: int
    length: int
    count: int
    crc32: int
    crc_ok: bool | None = None  # None: not checked (an earlier check failed)


@dataclass(frozen=True)
class Region:
    file_path: str
    state: int
    virtual_address: int
    length: int
    protection: int
    flags: int
    file_offset: int


@dataclass(frozen=True)
class PageMapping:
    index: int
    virtual_address: int
    physical_address: int


@dataclass
class Report:
    """What `inspect` found; `verdict` + `check` name the first failed check (firmware names)."""

    path: str
    device_size: int
    verdict: Verdict
    check: str = ""  # e.g. "marker_missing", "section_crc", "page_crc"; "" when complete
    check_section: str = ""  # for check == "section_crc"
    format_version: int | None = None
    sequence: int | None = None
    timestamp_us: int | None = None
    region_base: int | None = None
    sections: list[SectionInfo] = field(default_factory=list)
    page_count: int | None = None
    page_area_offset: int | None = None
    page_area_length: int | None = None
    page_crc32: int | None = None
    page_crc_present: bool = False
    page_crc_ok: bool | None = None
    marker_state: str = "missing"  # missing | invalid | complete | consumed | unknown
    persist_time_us: int | None = None

    @property
    def consumed(self) -> bool:
        return self.marker_state == "consumed"

    def firmware_status(self, force: bool = False) -> int:
        """Status WPP_EV_RESTORE would return (the firmware checks 'consumed' before CRCs)."""
        if self.verdict in (Verdict.NO_SNAPSHOT, Verdict.VERSION_MISMATCH):
            return self.verdict.status
        if self.verdict is Verdict.INCOMPLETE or self.check in ("header_crc", "layout"):
            return self.verdict.status
        if self.consumed and not force:
            return STATUS_CONSUMED
        return self.verdict.status

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["consumed"] = self.consumed
        d["firmware_status"] = self.firmware_status()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format_text(self) -> str:
        lines = [f"image:     {self.path} ({self.device_size} bytes)"]
        verdict = self.verdict.value
        if self.check:
            verdict += f" (check {self.check}"
            verdict += f" section={self.check_section})" if self.check_section else ")"
        lines.append(f"verdict:   {verdict}")
        if self.sequence is not None:
            lines.append(
                f"header:    format={self.format_version} seq={self.sequence} "
                f"timestamp_us={self.timestamp_us} region_base=0x{self.region_base or 0:x}"
            )
        lines.append(
            f"marker:    {self.marker_state}"
            + (f" persist_time_us={self.persist_time_us}" if self.persist_time_us else "")
        )
        for s in self.sections:
            crc = {True: "ok", False: "BAD", None: "unchecked"}[s.crc_ok]
            lines.append(
                f"section:   {s.name:<9} offset=0x{s.offset:x} length={s.length} "
                f"count={s.count} crc=0x{s.crc32:08x} {crc}"
            )
        if self.page_count is not None:
            if not self.page_crc_present:
                crc = "not recorded"
            else:
                crc = {True: "ok", False: "BAD", None: "unchecked"}[self.page_crc_ok]
            lines.append(
                f"pages:     count={self.page_count} offset=0x{self.page_area_offset or 0:x} "
                f"length={self.page_area_length} crc={crc}"
            )
        lines.append(f"firmware restore status: {self.firmware_status()}")
        return "\n".join(lines)


def _struct_crc(raw: bytes, crc_offset: int) -> int:
    return zlib.crc32(raw[:crc_offset] + b"\0\0\0\0" + raw[crc_offset + 4 :])


class SnapshotImage:
    """A persistent-device image opened read-only; accessors parse lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._f: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise HilError(
                f"cannot open snapshot image {self.path}: {e.strerror}",
                "pass the persistent-device file (the twin's pdev image or a dump of the "
                "FPGA's memory)",
            ) from e
        self.size = self.path.stat().st_size
        self._report: Report | None = None
        self._header: tuple[Any, ...] | None = None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SnapshotImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, offset: int, length: int) -> bytes:
        self._f.seek(offset)
        data = self._f.read(length)
        return data + b"\0" * (length - len(data))

    def report(self, verify_pages: bool = True) -> Report:
        if self._report is None:
            self._report = self._check(verify_pages)
        return self._report

    def _check(self, verify_pages: bool) -> Report:
        r = Report(path=str(self.path), device_size=self.size, verdict=Verdict.NO_SNAPSHOT)
        if self.size < DATA_OFFSET:
            r.check = "too_small"
            return r
        hraw = self._read(HEADER_OFFSET, HEADER_SIZE)
        mraw = self._read(MARKER_OFFSET, MARKER_SIZE)
        h = _HEADER.unpack(hraw)
        m = _MARKER.unpack(mraw)
        has_hdr, has_marker = h[0] == SNAP_MAGIC, m[0] == MARKER_MAGIC
        if has_marker:
            r.marker_state = {MARKER_STATE_COMPLETE: "complete",
                              MARKER_STATE_CONSUMED: "consumed"}.get(m[3], "unknown")
            r.persist_time_us = m[4]
        if has_hdr:
            self._fill_header(r, h)
        if not has_hdr and not has_marker:
            r.check = "no_header"
            return r
        if has_hdr and (h[1] != SNAP_FORMAT_VERSION or h[2] != HEADER_SIZE):
            r.verdict, r.check = Verdict.VERSION_MISMATCH, "format_version"
            return r
        if not has_hdr or not has_marker:
            r.verdict = Verdict.INCOMPLETE
            r.check = "marker_missing" if has_hdr else "header_missing"
            return r
        if _struct_crc(mraw, _MARKER_CRC_OFFSET) != m[6]:
            r.verdict, r.check, r.marker_state = Verdict.INCOMPLETE, "marker_crc", "invalid"
            return r
        hcrc = _struct_crc(hraw, _HEADER_CRC_OFFSET)
        if hcrc != h[-1]:
            r.verdict, r.check = Verdict.CORRUPT, "header_crc"
            return r
        if m[1] != h[3] or m[2] != hcrc:
            r.verdict, r.check = Verdict.INCOMPLETE, "marker_mismatch"
            return r
        if not self._layout_ok(r):
            r.verdict, r.check = Verdict.CORRUPT, "layout"
            return r
        self._header = h
        checked = []
        failed = False
        for s in r.sections:
            if failed:
                checked.append(s)
                continue
            ok = self._crc_range(s.offset, s.length) == s.crc32
            checked.append(SectionInfo(s.name, s.offset, s.length, s.count, s.crc32, ok))
            if not ok:
                failed = True
                r.verdict, r.check, r.check_section = Verdict.CORRUPT, "section_crc", s.name
        r.sections = checked
        if failed:
            return r
        if r.page_count and not r.page_crc_present:
            # as the firmware: pages nobody verified are never accepted
            r.verdict, r.check = Verdict.CORRUPT, "page_crc_missing"
            return r
        if r.page_crc_present and verify_pages:
            r.page_crc_ok = (
                self._crc_range(r.page_area_offset or 0, r.page_area_length or 0)
                == r.page_crc32
            )
            if not r.page_crc_ok:
                r.verdict, r.check = Verdict.CORRUPT, "page_crc"
                return r
        r.verdict = Verdict.COMPLETE
        return r

    @staticmethod
    def _fill_header(r: Report, h: tuple[Any, ...]) -> None:
        r.format_version, r.sequence, r.timestamp_us, r.region_base = h[1], h[3], h[4], h[5]
        r.sections = [
            SectionInfo(SECTION_NAMES[i], h[6 + 4 * i], h[7 + 4 * i], h[8 + 4 * i], h[9 + 4 * i])
            for i in range(3)
        ]
        r.page_area_offset, r.page_count, r.page_area_length = h[18], h[19], h[20]
        r.page_crc32 = h[21]
        r.page_crc_present = bool(h[22] & SNAP_F_PAGE_CRC)

    def _layout_ok(self, r: Report) -> bool:
        meta, regions, plist = r.sections
        pc = r.page_count or 0
        if (
            meta.length > METADATA_SIZE
            or regions.count > REGION_SLOTS
            or regions.length != regions.count * REGION_SIZE
            or pc != plist.count
            or plist.length != pc * PAGE_MAPPING_SIZE
            or plist.length > PAGES_SIZE
            or r.page_area_length != pc * PAGE_SIZE
        ):
            return False
        spans = [(s.offset, s.length) for s in r.sections]
        spans.append((r.page_area_offset or 0, r.page_area_length or 0))
        return all(off >= DATA_OFFSET and off + ln <= self.size for off, ln in spans)

    def _crc_range(self, offset: int, length: int) -> int:
        crc = 0
        self._f.seek(offset)
        while length > 0:
            chunk = self._f.read(min(length, 1 << 20))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            length -= len(chunk)
        return crc

    # --- content accessors (require a header with a sane layout) ---

    def _section(self, index: int) -> SectionInfo:
        r = self.report(verify_pages=False)
        if not r.sections or r.check in ("layout", "format_version"):
            raise HilError(
                f"{self.path}: no readable snapshot ({r.verdict.value}, check {r.check})",
                "inspect the image with 'hil snapshot inspect' to see which check failed",
            )
        return r.sections[index]

    def metadata(self) -> bytes:
        s = self._section(0)
        return self._read(s.offset, s.length)

    def regions(self) -> list[Region]:
        s = self._section(1)
        raw = self._read(s.offset, s.count * REGION_SIZE)
        out = []
        for i in range(s.count):
            path, state, va, length, prot, flags, foff = _REGION.unpack_from(raw, i * REGION_SIZE)
            out.append(
                Region(path.split(b"\0", 1)[0].decode(errors="replace"), state, va, length,
                       prot, flags, foff)
            )
        return out

    def pages(self) -> list[PageMapping]:
        s = self._section(2)
        raw = self._read(s.offset, s.count * PAGE_MAPPING_SIZE)
        return [PageMapping(i, *_PAGE.unpack_from(raw, i * PAGE_MAPPING_SIZE))
                for i in range(s.count)]

    def page(self, index: int) -> bytes:
        """Contents of snapshot page `index` (the order of `pages()`)."""
        self._section(2)
        r = self.report(verify_pages=False)
        if not 0 <= index < (r.page_count or 0):
            raise HilError(f"page index {index} out of range (0..{(r.page_count or 0) - 1})")
        return self._read((r.page_area_offset or 0) + index * PAGE_SIZE, PAGE_SIZE)

    def page_for_va(self, virtual_address: int) -> bytes:
        for p in self.pages():
            if p.virtual_address == virtual_address:
                return self.page(p.index)
        raise HilError(f"no page for virtual address 0x{virtual_address:x} in the snapshot")


def inspect(path: str | Path, verify_pages: bool = True) -> Report:
    """Parse and check the snapshot on a persistent-device image (see `Report`)."""
    with SnapshotImage(path) as img:
        return img.report(verify_pages=verify_pages)
