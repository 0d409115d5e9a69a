"""Content-addressed cache for expensive builds under ``~/.cache/wpp-hil``.

A build's key is the sha256 of all its inputs (sources, patches, configs, versions), so a
warm run reuses the output and any input change rebuilds. Override the root with
``$WPP_HIL_CACHE``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("WPP_HIL_CACHE", Path.home() / ".cache" / "wpp-hil"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
