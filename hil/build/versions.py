"""Which versions of Debian's inputs the current builds used, as their manifests record them.

Debian moves its packages every few weeks and a new machine gets the newest, so a build
must say what it was made from: the kernel and coreboot sources (pinned, fetched by the
build scripts), the guest image's userland (busybox, dropbear, redis, 7z, sftp-server,
libc: taken from the installed packages and part of the image's cache key), and the tools
that run the twin (QEMU, flashrom). `hil cache status` prints this table.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hil.cache.keys import cache_root

TOOL_PACKAGES = ("qemu-system-x86", "flashrom")


def _kv(path: Path) -> dict[str, str]:
    """``key value`` lines (the kernel's and the guest image's manifests)."""
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key and value:
                out[key] = value.strip()
    return out


def _newest(paths: list[Path]) -> Path | None:
    existing = [p for p in paths if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def installed(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed Debian package versions ('-' for a package that is not installed)."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *packages],
                         capture_output=True, text=True, check=False)
    found = _kv_text(res.stdout)
    return {p: found.get(p, "-") for p in packages}


def _kv_text(text: str) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in text.splitlines() if " " in line)
    return {k: v.strip() for k, v in pairs}


def kernel_source(root: Path) -> dict[str, str]:
    """The newest twin kernel's source: version, pinned revision, the .deb's sha256."""
    man = _newest(list((root / "kernel" / "out").glob("emulated-*/manifest")))
    data = _kv(man) if man else {}
    if not data:
        return {}
    ver, pin = data.get("source_version", "?"), data.get("source_pinned", "?")
    note = "pinned" if ver == pin else f"fallback; pinned {pin} is gone from the archive"
    return {"linux-source-6.1": f"{ver} ({note})"}


def coreboot_source(root: Path) -> dict[str, str]:
    man = _newest(list((root / "firmware").glob("*/manifest.json")))
    if man is None:
        return {}
    data = json.loads(man.read_text())
    return {"coreboot": f"{data.get('coreboot_version', '?')} (pinned, orig sha256 "
                        f"{data.get('coreboot_orig_sha256', '?')[:12]})"}


def guest_packages(root: Path) -> dict[str, str]:
    """Package versions recorded in the newest guest image's build-info.txt."""
    info = _newest(list((root / "rootfs").glob("*/build-info.txt")))
    if info is None:
        return {}
    skip = {"hash", "sha256", "compressed_bytes", "unpacked_bytes", "build_seconds"}
    return {f"guest {k}": v for k, v in _kv_text(info.read_text().replace("\t", " ")).items()
            if k not in skip}


def versions(root: Path | None = None) -> dict[str, str]:
    """Every recorded input version, by name (empty where nothing was built yet)."""
    root = root or cache_root()
    out: dict[str, str] = {}
    for part in (kernel_source(root), coreboot_source(root), guest_packages(root)):
        out.update(part)
    out.update({f"tool {k}": v for k, v in installed(TOOL_PACKAGES).items()})
    return out
