"""Per-run artifact directories: ``runs/<timestamp>/<name>/``.

Every CLI invocation or pytest session that touches a board gets one run directory, so
serial logs, `cbmem -c`, dmesg, screenshots and flash backups of one run stay together.
The root is ``$HIL_RUNS_DIR`` or ``runs/`` at the repository top.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # hil/core/runs.py -> the checkout

_current: Path | None = None


def runs_root() -> Path:
    return Path(os.environ.get("HIL_RUNS_DIR", REPO_ROOT / "runs"))


def current_run() -> Path:
    """The run directory of this process, created on first use."""
    global _current
    if _current is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = runs_root() / stamp
        path, n = base, 1
        while True:
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                n += 1
                path = base.with_name(f"{stamp}-{n}")
        _current = path
    return _current


def artifact_dir(name: str) -> Path:
    """``<run>/<name>/`` with `name` made filesystem-safe (e.g. a pytest node id)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "artifacts"
    path = current_run() / safe
    path.mkdir(parents=True, exist_ok=True)
    return path
