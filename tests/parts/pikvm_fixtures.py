"""Fixtures for tests that talk to a real loopback kvmd server (hil.emulated.kvmd.server).

Test modules import this file and re-export the fixtures they use, e.g.
``kvmd = pikvm_fixtures.kvmd``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.drivers.pikvm import PiKvmClient
from hil.emulated.kvmd.server import KvmdServer
from hil.emulated.kvmd.simulated import SimulatedBoardBackend

USER = "admin"
PASSWORD = "kvmd-Pa55-never-shown"  # a distinctive value so leaks are easy to grep for


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sim_board(tmp_path: Path) -> SimulatedBoardBackend:
    return SimulatedBoardBackend(
        tmp_path / "msd", press_s=0.05, long_press_s=0.1, gpio_channels=("relay", "led")
    )


@pytest.fixture
def kvmd(sim_board: SimulatedBoardBackend) -> Iterator[KvmdServer]:
    with KvmdServer(sim_board, user=USER, password=PASSWORD) as srv:
        yield srv


@pytest.fixture
def client(kvmd: KvmdServer) -> Iterator[PiKvmClient]:
    with PiKvmClient(kvmd.url, USER, PASSWORD, timeout=5, retries=2, backoff=0.05) as c:
        yield c


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI, like PiKVM's."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl CLI not installed (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
