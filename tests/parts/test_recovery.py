"""hil.lab.recovery's parts: its configuration, the known-good ROM store, and the USB route
(MSI's Flash BIOS button) as far as the kvmd API goes, against the loopback kvmd server.

The SPI route and the whole detect -> restore -> verify flow run on the twin
(tests/emulated/test_recover.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hil.core.errors import ConfigError
from hil.core.inventory import load
from hil.drivers.pikvm import PiKvmClient
from hil.emulated.kvmd.server import KvmdServer
from hil.emulated.kvmd.simulated import SimulatedBoardBackend
from hil.lab import recovery as R

REPO = Path(__file__).resolve().parents[2]


def board(**recovery: Any) -> Any:
    b = load(REPO / "inventory.yaml").board("msi-z690")
    return b.replace(firmware={**b.firmware, "recovery": recovery} if recovery else
                     {k: v for k, v in b.firmware.items() if k != "recovery"})


def test_config_defaults_and_errors() -> None:
    cfg = R.RecoveryConfig.of(board())
    assert cfg.routes == ("spi",) and cfg.usb_file_name == "MSI.ROM"
    cfg = R.RecoveryConfig.of(board(routes=["spi", "usb"], flash_bios_gpio="flash_bios"))
    assert cfg.routes == ("spi", "usb")
    with pytest.raises(ConfigError, match="needs flash_bios_gpio"):
        R.RecoveryConfig.of(board(routes=["usb"]))
    with pytest.raises(ConfigError, match="unknown key"):
        R.RecoveryConfig.of(board(route="spi"))
    with pytest.raises(ConfigError, match="routes"):
        R.RecoveryConfig.of(board(routes=["jtag"]))


def test_the_shipped_inventory_configures_both_routes_for_the_msi_board() -> None:
    b = load(REPO / "inventory.yaml").board("msi-z690")
    cfg = R.RecoveryConfig.of(b)
    assert cfg.routes[0] == "spi" and "usb" in cfg.routes and cfg.flash_bios_gpio


def test_a_rom_is_known_good_only_after_it_booted(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPP_HIL_CACHE", str(tmp_path))
    kg = R.KnownGood(board())
    assert kg.rom() is None and not kg.promote()
    first = tmp_path / "a.rom"
    first.write_bytes(b"A" * 4096)
    kg.record_flashed(first)
    assert kg.rom() is None  # written, never booted
    assert kg.promote() and kg.rom() is not None
    assert kg.rom().read_bytes() == first.read_bytes()  # type: ignore[union-attr]
    second = tmp_path / "b.rom"
    second.write_bytes(b"B" * 4096)
    kg.record_flashed(second)  # a bad flash: the board never boots it
    assert kg.rom().read_bytes() == first.read_bytes()  # type: ignore[union-attr]


class RecordingBoard(SimulatedBoardBackend):
    """The simulated board, noting what the recovery did through the API."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.events: list[tuple[str, object]] = []

    def gpio_pulse(self, channel: str, delay: float | None, wait: bool) -> None:
        state = self.msd_state()
        self.events.append(("pulse", (channel, state.connected, state.image)))
        super().gpio_pulse(channel, delay, wait)

    def msd_set_connected(self, connected: bool) -> None:
        self.events.append(("connected", connected))
        super().msd_set_connected(connected)


class _Target:
    """What restore_usb uses of a Target: its PiKVM and power buttons."""

    is_emulated = False

    def __init__(self, client: PiKvmClient) -> None:
        self.pikvm = client

    def force_off(self) -> None:
        if self.pikvm.atx_state().power_led:
            self.pikvm.atx_power("off_hard")


def test_usb_route_puts_the_rom_on_the_drive_and_presses_flash_bios(tmp_path: Path) -> None:
    backend = RecordingBoard(tmp_path / "msd", gpio_channels=("relay", "flash_bios"))
    rom = tmp_path / "good.rom"
    rom.write_bytes(os.urandom(1 << 20))
    cfg = R.RecoveryConfig(routes=("usb",), flash_bios_gpio="flash_bios",
                           usb_flash_wait_s=0.1)
    with KvmdServer(backend, user="admin", password="pw") as server, \
            PiKvmClient(server.url, "admin", "pw") as client:
        detail = R.restore_usb(_Target(client), rom, cfg)
        state = client.msd_state()
    assert "MSI.ROM" in detail and "flash_bios" in detail
    # the button was pressed with the drive connected, holding our image
    pulses = [e for e in backend.events if e[0] == "pulse"]
    assert pulses == [("pulse", ("flash_bios", True, "wpp-recovery.img"))]
    assert backend.events[-1] == ("connected", False)  # and the drive taken away after
    assert not state.connected
    # the drive is a FAT volume with the ROM under the name MSI's firmware looks for
    img = tmp_path / "msd" / "wpp-recovery.img"
    out = tmp_path / "from-drive.rom"
    subprocess.run(["mcopy", "-i", str(img), "::MSI.ROM", str(out)], check=True)
    assert out.read_bytes() == rom.read_bytes()
