"""Content-addressed cache for expensive builds under ``~/.cache/wpp-hil``.

A build's key is the sha256 of all its inputs (sources, patches, configs, versions), so a
warm run reuses the output and any input change rebuilds. Override the root with
``$WPP_HIL_CACHE``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("WPP_HIL_CACHE", Path.home() / ".cache" / "wpp-hil"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def hash_inputs(paths: Iterable[Path], extra: Iterable[str] = ()) -> str:
    """sha256 over file names and contents (directories walked in sorted order) plus strings."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(p.parent) if p.is_dir() else f.name).encode())
            h.update(b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    for s in extra:
        h.update(s.encode())
        h.update(b"\0")
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
