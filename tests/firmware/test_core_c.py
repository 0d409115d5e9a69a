"""Every C unit test of the WPP core (tests/firmware/c/test_core.c) as its own pytest case.

Built with ASan/UBSan: an out-of-bounds access in the core fails the case even when the
test's own assertions pass.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "c" / "test_core.c"
NAMES = re.findall(r'\{ "([a-z_0-9]+)", t_[a-z_0-9]+ \}', SOURCE.read_text())


def test_registry_is_parsed() -> None:
    # guards against the regex silently matching nothing (zero cases = zero coverage)
    assert len(NAMES) >= 20
    assert {"roundtrip", "power_cut", "fuzz", "bad_addresses"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_core(name: str, test_core_bin: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(test_core_bin), name, str(tmp_path / "pdev.img")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert f"ok {name}" in proc.stdout
