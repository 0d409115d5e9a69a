"""A minimal reader for cpio "newc" archives, so the image tests inspect exactly the
bytes the kernel will unpack (modes, owners, mtimes, device numbers) without extracting
anything onto the host."""

from __future__ import annotations

import gzip
import lzma
import struct
from dataclasses import dataclass
from pathlib import Path

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    name: str
    mode: int
    uid: int
    gid: int
    mtime: int
    rdevmajor: int
    rdevminor: int
    data: bytes

    @property
    def kind(self) -> int:
        return self.mode & 0o170000

    @property
    def perms(self) -> int:
        return self.mode & 0o7777


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def read_archive(path: Path) -> dict[str, Entry]:
    """All entries of a (gzip/xz-compressed or plain) newc archive, keyed by name."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        raw = lzma.decompress(raw)
    entries: dict[str, Entry] = {}
    pos = 0
    while True:
        if raw[pos : pos + 6] != NEWC_MAGIC:
            raise ValueError(f"bad newc magic at offset {pos}")
        fields = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        _ino, mode, uid, gid, _nlink, mtime, size, _dmaj, _dmin, rmaj, rmin, namesize, _ = fields
        pos += 110
        name = raw[pos : pos + namesize - 1].decode()
        pos += namesize + _pad4(110 + namesize)
        data = raw[pos : pos + size]
        pos += size + _pad4(size)
        if name == TRAILER:
            return entries
        entries[name] = Entry(name, mode, uid, gid, mtime, rmaj, rmin, data)


def elf_interpreter(data: bytes) -> str | None:
    """The PT_INTERP path of a 64-bit little-endian ELF, or None for a static binary."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, = struct.unpack_from("<I", data, off)
        if p_type == 3:  # PT_INTERP
            p_offset, = struct.unpack_from("<Q", data, off + 8)
            p_filesz, = struct.unpack_from("<Q", data, off + 32)
            return data[p_offset : p_offset + p_filesz].rstrip(b"\0").decode()
    return None
