"""Read the region table of an Intel Flash Descriptor (IFD) from a full flash image.

`hil.drivers.flash` writes only the BIOS region (``flashrom -N --ifd -i bios``). flashrom then
takes the region layout from the descriptor *on the chip* and the data from the same
offsets of the image file; if the image was built with a different layout the wrong bytes
land in the region. Comparing both descriptors before writing catches that.
"""

from __future__ import annotations

import struct

SIGNATURE = 0x0FF0A55A
# flashrom's names for FLREG0..15 (`-i <name>`)
REGION_NAMES = ("fd", "bios", "me", "gbe", "pd", "reg5", "bios2", "reg7", "ec", "reg9", "ie",
                "10gbe", "reg12", "reg13", "reg14", "reg15")


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]


def ifd_regions(data: bytes) -> dict[str, tuple[int, int]] | None:
    """``{name: (base, limit)}`` (limit inclusive) of the used regions, or None without IFD.

    The signature sits at offset 0x10 (or 0x0 on very old ICH8 images). Entries whose
    limit is below their base are unused, as in flashrom.
    """
    if len(data) < 0x1000:
        return None
    for sig_off in (0x10, 0x0):
        if _u32(data, sig_off) == SIGNATURE:
            break
    else:
        return None
    flmap0, flmap1, flmap2 = (_u32(data, sig_off + 4 * k) for k in (1, 2, 3))
    fcba = (flmap0 & 0xFF) << 4
    frba = ((flmap0 >> 16) & 0xFF) << 4
    fmba = (flmap1 & 0xFF) << 4
    fisba = ((flmap1 >> 16) & 0xFF) << 4
    fmsba = (flmap2 & 0xFF) << 4
    # The region table ends where the next section starts (8 entries before Skylake, 16 since).
    following = [b for b in (fcba, fmba, fisba, fmsba) if b > frba]
    end = min([*following, frba + 4 * len(REGION_NAMES), 0x1000])
    regions: dict[str, tuple[int, int]] = {}
    for i, name in enumerate(REGION_NAMES):
        off = frba + 4 * i
        if off + 4 > end:
            break
        reg = _u32(data, off)
        base = (reg & 0x7FFF) << 12
        limit = (((reg >> 16) & 0x7FFF) << 12) | 0xFFF
        if limit > base and (i == 0 or reg != 0):  # an all-zero entry past FLREG0 is unused
            regions[name] = (base, limit)
    return regions
