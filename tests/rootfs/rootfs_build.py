"""Runs kernel/rootfs/build.sh for the image tests and enforces its output contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "kernel" / "rootfs" / "build.sh"


def run_build(*args: str) -> Path:
    """Run build.sh and return the path on its last stdout line (the script's contract)."""
    proc = subprocess.run(
        [str(BUILD), *args], capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, f"build.sh {' '.join(args)} failed:\n{proc.stderr}"
    last = proc.stdout.strip().splitlines()[-1]
    path = Path(last)
    assert path.is_absolute() and path.is_file(), f"last line is not an image path: {last!r}"
    return path
