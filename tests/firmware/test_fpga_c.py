"""The FPGA request-ring driver against the C device model (tests/firmware/c/test_fpga.c).

The model flags a request in an unusable (every 128th) ring entry, a doorbell on such an
entry, overwritten unconsumed requests and out-of-range DMA; stalls and failed requests
check the timeout and error paths, and a full persist/restore runs through the rings.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "c" / "test_fpga.c"
NAMES = re.findall(r'\{ "([a-z_0-9]+)", t_[a-z_0-9]+ \}', SOURCE.read_text())


def test_registry_is_parsed() -> None:
    assert {"wraps_and_skips", "inflight_limit", "timeout", "core_roundtrip"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fpga(name: str, test_fpga_bin: Path, tmp_path: Path) -> None:
    proc = subprocess.run([str(test_fpga_bin), name, str(tmp_path / "unused.img")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert f"ok {name}" in proc.stdout
