"""Fixtures for the guest image tests: the image is built once per session through
kernel/rootfs/build.sh (cached, so a warm run costs well under a second)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rootfs_build import run_build


@pytest.fixture(scope="session")
def initramfs() -> Path:
    return run_build()
