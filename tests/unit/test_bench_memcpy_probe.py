"""wpp-memcpy, the guest's copy-bandwidth probe, built and run on the host: its output is
what `guest.parse_memcpy` reads, every routine copies the right bytes, bad arguments are
refused (the guest run is exercised by ``hil bench --quick``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hil.bench import guest

SOURCE = Path(__file__).resolve().parents[2] / "kernel" / "tools" / "wpp-memcpy.c"


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make setup installs it)")
    exe = tmp_path_factory.mktemp("probe") / "wpp-memcpy"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(exe), str(SOURCE)],
                   check=True, capture_output=True, text=True)
    return exe


def test_every_routine_reports_a_bandwidth_the_parser_reads(probe: Path) -> None:
    res = subprocess.run([str(probe), *guest.memcpy_probe(4, 2).split()[1:]],
                         capture_output=True, text=True, timeout=60, check=True)
    got = guest.parse_memcpy(res.stdout)
    assert sorted(got) == sorted(guest.MEMCPY_METHODS)
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in got.values())
    assert "median_gib_s=" in res.stdout


@pytest.mark.parametrize("args", [["--size-mib", "0"], ["--reps", "101"],
                                  ["--method", "avx"], ["extra"]])
def test_bad_arguments_are_refused(probe: Path, args: list[str]) -> None:
    res = subprocess.run([str(probe), *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "error:" in res.stderr or "usage:" in res.stderr
    assert "wpp-memcpy: method=" not in res.stdout
