"""Fixtures for the firmware tests: compile the WPP core with the host platform.

The C sources are the real firmware core (firmware/wpp/src); only the platform differs
(firmware/wpp/host: buffers for RAM/SMRAM/region, a file as the persistent device).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WPP = REPO / "firmware" / "wpp"
CORE_SOURCES = [WPP / "src" / "core.c", WPP / "src" / "util.c", WPP / "src" / "mmio.c",
                WPP / "host" / "host_platform.c"]
CFLAGS = ["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror",
          f"-I{WPP / 'include'}", f"-I{WPP / 'host'}"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]


def compile_c(out: Path, sources: list[Path], sanitize: bool = True) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required for the firmware tests (apt-get install gcc)")
    cmd = ["gcc", *CFLAGS, *(SANITIZE if sanitize else []), *map(str, sources), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"compile failed:\n{' '.join(cmd)}\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def test_core_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wpp-c")
    return compile_c(d / "test_core", [*CORE_SOURCES, Path(__file__).parent / "c" / "test_core.c"])


@pytest.fixture(scope="session")
def host_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wpp-tool")
    return compile_c(d / "wpp-host-tool", [*CORE_SOURCES, WPP / "host" / "wpp_host_tool.c"])


@pytest.fixture(scope="session")
def test_fpga_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wpp-fpga")
    return compile_c(d / "test_fpga", [*CORE_SOURCES, WPP / "src" / "fpga.c",
                                       Path(__file__).parent / "c" / "test_fpga.c"])
