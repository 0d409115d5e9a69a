"""What the build cache holds: its entries per kind, their size, when last used, which are in use.

Layout under `cache_root()` (the build scripts' own layout, see their headers)::

    kernel/out/<target>-<hash>/      kernel        one finished kernel per source state
    kernel/source/<version>/         kernel-source fetched source tarball (kernel/source.sh)
    kernel/src/<version>/            kernel-src    pristine Debian source (the pinned one is used)
    kernel/work-<target>/            (fixed)       incremental build tree of the next build
    firmware/<hash>/                 firmware      twin ROM with its Linux payload
    firmware/base/<hash>/            firmware-base coreboot without payload
    rootfs/<hash>/                   rootfs        guest initramfs
    rootfs/cbmem-<hash>/             cbmem         static cbmem for the guest
    coreboot-src/<version>/          coreboot-src  unpacked pinned coreboot tree
    firmware/board/<tag>/            firmware-board lab board ROM (Dasharo, built in Docker)
    dasharo/<tag>/                   dasharo       Dasharo coreboot tree of the lab board build
    kernel/board-cache/              (fixed)       the board kernel container's build cache
    twins/<name>/                    twins         a twin's state (chip, pdev, logs)
    keys/                            (fixed)       the twin's ssh keys: never touched

Interrupted builds leave ``*.tmp``/``build.*``/``firmware/work/*`` folders: kind
``partial``. An entry's last use is its folder's mtime: builds create it, and `mark_used`
(called by `hil.build.twin` whenever a build is reused) refreshes it, so the order is least
recently *used*, not least recently built. A twin's last use is its newest file (logs
grow while it runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hil.cache.keys import cache_root
from hil.emulated.state import StateDir, tracked_pid


# Filled by `hil.cache.current` (which asks the build scripts); declared here, below the
# builds, so that the cache does not depend on them.
@dataclass
class CurrentKeys:
    """Entry names (directory names inside each kind's folder) the current tree uses."""

    names: dict[str, set[str]] = field(default_factory=dict)
    # kinds whose key could not be computed, with the reason (shown by `hil cache status`)
    unknown: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, name: str) -> None:
        self.names.setdefault(kind, set()).add(name)

    def of(self, kind: str) -> set[str]:
        return self.names.get(kind, set())



@dataclass(frozen=True)
class Kind:
    """One kind of cache entry: the folder holding them and which names belong to it."""

    name: str
    folder: str  # relative to the cache root
    pattern: str  # regex an entry's directory name matches in full
    what: str


_HEX = "[0-9a-f]"
KINDS = (
    Kind("kernel", "kernel/out", rf"[a-z]+-{_HEX}{{16}}", "finished kernels"),
    Kind("kernel-source", "kernel/source", r"[0-9][^/]*", "fetched kernel source tarballs"),
    Kind("kernel-src", "kernel/src", r"[0-9][^/]*", "pristine kernel source"),
    Kind("firmware", "firmware", rf"{_HEX}{{64}}", "twin ROMs with payload"),
    Kind("firmware-base", "firmware/base", rf"{_HEX}{{64}}", "coreboot base ROMs"),
    Kind("rootfs", "rootfs", rf"{_HEX}{{16}}", "guest initramfs images"),
    Kind("cbmem", "rootfs", rf"cbmem-{_HEX}{{16}}", "static cbmem binaries"),
    Kind("coreboot-src", "coreboot-src", r"[0-9][^/]*", "unpacked coreboot source"),
    Kind("firmware-board", "firmware/board", r"[^.][^/]*", "lab board ROMs per Dasharo tag"),
    Kind("dasharo", "dasharo", r"[^.][^/]*", "Dasharo coreboot trees per tag"),
    Kind("twins", "twins", r"[^.][^/]*", "twin state (chip, pdev, logs)"),
)
# Left by interrupted builds; a build still running keeps writing to its folder.
PARTIAL_GLOBS = ("kernel/out/*.tmp", "kernel/src/*.tmp", "kernel/source/*.tmp", "firmware/*.tmp.*",
                 "firmware/base/*.tmp.*", "firmware/work/*", "rootfs/build.*",
                 "rootfs/cbmem-build.*")
# Listed with their size, never entries: pruning never touches them.
FIXED_GLOBS = ("keys", "kernel/work-*", "kernel/board-cache", "firmware/.lock",
               "kernel/source/fallback")


@dataclass
class Entry:
    kind: str
    path: Path
    size: int  # bytes on disk; blocks shared by hard links count once, where first seen
    last_used: float  # epoch seconds
    in_use: str = ""  # why it must stay ("current tree", "running twin"); "" = not in use

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class CacheUsage:
    root: Path
    entries: dict[str, list[Entry]] = field(default_factory=dict)  # kind -> newest first
    partial: list[Entry] = field(default_factory=list)
    fixed: list[Entry] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)  # kind -> why its key is unknown

    @property
    def total(self) -> int:
        return sum(e.size for e in self.all_entries())

    def all_entries(self) -> Iterator[Entry]:
        for entries in self.entries.values():
            yield from entries
        yield from self.partial
        yield from self.fixed


class _DiskUsage:
    """du: bytes on disk under a path, counting each inode once across calls."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, int]] = set()

    def __call__(self, path: Path) -> int:
        total = 0
        stack = [path]
        while stack:
            p = stack.pop()
            try:
                st = p.lstat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in self._seen:
                continue
            self._seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if p.is_dir() and not p.is_symlink():
                try:
                    stack.extend(p.iterdir())
                except OSError:
                    continue
        return total


def _newest_file(path: Path) -> float:
    newest = path.stat().st_mtime
    for child in path.iterdir():
        try:
            newest = max(newest, child.stat().st_mtime)
        except OSError:
            continue
    return newest


def twin_running(path: Path) -> bool:
    """Whether the twin with state folder `path` runs (its daemon or QEMU is alive)."""
    sd = StateDir(path)
    marker = str(sd.path)
    return (tracked_pid(sd.daemon_pidfile, marker) is not None
            or tracked_pid(sd.qemu_pidfile, marker) is not None)


def scan(root: Path | None = None, current: CurrentKeys | None = None,
         twin_running: Callable[[Path], bool] = twin_running) -> CacheUsage:
    """Every entry under `root` with its size, last use and whether it is in use.

    `current` says which names the working tree hashes to (`cache_current.current_keys`);
    without it nothing counts as current (pruning then keeps each kind's newest).
    """
    root = root or cache_root()
    names = current.names if current is not None else {}
    usage = CacheUsage(root=root, unknown=dict(current.unknown) if current is not None else {})
    du = _DiskUsage()
    partial = [p for pattern in PARTIAL_GLOBS for p in sorted(root.glob(pattern)) if p.is_dir()]
    for kind in KINDS:
        folder = root / kind.folder
        found: list[Entry] = []
        if folder.is_dir():
            for p in folder.iterdir():
                if (p in partial or not p.is_dir() or p.is_symlink()
                        or not re.fullmatch(kind.pattern, p.name)):
                    continue
                if kind.name == "twins":
                    reason = "running twin" if twin_running(p) else ""
                    found.append(Entry(kind.name, p, du(p), _newest_file(p), reason))
                else:
                    reason = "current tree" if p.name in names.get(kind.name, ()) else ""
                    found.append(Entry(kind.name, p, du(p), p.stat().st_mtime, reason))
        found.sort(key=lambda e: e.last_used, reverse=True)
        usage.entries[kind.name] = found
    usage.partial = [Entry("partial", p, du(p), _newest_file(p)) for p in partial]
    # last: kernel/work-* hard-links the pristine kernel source, whose entry owns those blocks
    for pattern in FIXED_GLOBS:
        for p in sorted(root.glob(pattern)):
            usage.fixed.append(Entry("fixed", p, du(p), p.stat().st_mtime, "never pruned"))
    return usage


def entry_of(path: Path, root: Path | None = None) -> Path | None:
    """The cache entry folder holding `path` (an artifact a build script returned), if any."""
    root = (root or cache_root()).resolve()
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return None
    for kind in sorted(KINDS, key=lambda k: -k.folder.count("/")):
        depth = kind.folder.count("/") + 1
        if (len(rel.parts) > depth and "/".join(rel.parts[:depth]) == kind.folder
                and re.fullmatch(kind.pattern, rel.parts[depth])):
            return root.joinpath(*rel.parts[:depth + 1])
    return None


def mark_used(path: Path, root: Path | None = None) -> None:
    """Record that the artifact at `path` was just used (its entry's mtime becomes now).

    A twin ROM also marks the base ROM it was made from (its manifest names it): the
    base is what makes the next ROM of the same firmware cheap.
    """
    entry = entry_of(path, root)
    if entry is None:
        return
    used = [entry]
    if entry.parent.name == "firmware":
        with contextlib.suppress(OSError, ValueError, AttributeError):
            base = json.loads((entry / "manifest.json").read_text()).get("base_hash", "")
            if re.fullmatch(f"{_HEX}{{64}}", base):
                used.append(entry.parent / "base" / base)
    now = time.time()
    for p in used:
        with contextlib.suppress(OSError):  # bookkeeping must never fail a build
            os.utime(p, (now, now))
