"""kvmd backend of the twin: PiKVM's buttons, screen, keyboard and mains relay drive QEMU.

The same `hil.emulated.kvmd.server.KvmdServer` that serves the simulated board serves this
backend, so the client code is identical for the lab board and the twin. Semantics:

* power LED = QEMU is running (the guest powering itself off ends QEMU: LED off);
* power press while off = start QEMU from the chip file; short press while on = ACPI
  power button (QMP system_powerdown); long press = hard off (QMP quit / kill);
  reset = QMP system_reset;
* the mains relay channel: in state `mains_cut_state` (True, as kvmd's relay switched
  "on" to open the mains) QEMU is SIGKILLed at once (RAM lost, chip and persistent
  device files kept) and power presses do nothing until mains return;
* the screen is QMP screendump (503 while off); keys become QMP send-key chords;
* the virtual USB drive stores images in ``<state>/msd`` (kvmd semantics reused from
  the simulated backend); connecting one hot-plugs it into the guest as a USB
  mass-storage device (QEMU usb-storage on an xHCI controller), disconnecting unplugs it;
* the GPIO channel ``flash_bios`` is MSI's Flash BIOS button: pressed while the machine
  is off with a drive connected, the board flashes itself from the drive's ``MSI.ROM``
  (a FAT volume), as the MSI board does; the chip file then holds that ROM.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from hil.core.errors import HilError
from hil.drivers.pikvm import AtxState, GpioChannel, GpioState, MsdImage, MsdState
from hil.emulated.kvmd.atx import KVMD_SETTLE_S, AtxButtons
from hil.emulated.kvmd.msd import MsdStore
from hil.emulated.kvmd.server import (
    KvmdBusyError,
    KvmdError,
    KvmdUnavailableError,
    atx_action_button,
    perform_op,
)
from hil.emulated.machine import Machine

log = logging.getLogger(__name__)

FLASH_BIOS_CHANNEL = "flash_bios"
FLASH_BIOS_FILE = "MSI.ROM"


class QemuKvmdBackend:
    """The `KvmdBackend` of one twin. Thread-safe; ATX busy as kvmd (`hil.emulated.kvmd.atx`):
    the power and reset buttons each refuse a press (409) while held and `atx_settle_s`
    after their release."""

    def __init__(
        self,
        machine: Machine,
        *,
        relay_channel: str = "relay",
        mains_cut_state: bool = True,
        press_s: float = 0.1,
        long_press_s: float = 0.5,
        atx_settle_s: float = KVMD_SETTLE_S,
    ) -> None:
        self.machine = machine
        self.relay_channel = relay_channel
        self.mains_cut_state = mains_cut_state
        self.press_s = press_s
        self.long_press_s = long_press_s
        self._lock = threading.RLock()
        self._atx = AtxButtons(atx_settle_s, self._lock)
        self._relay = not mains_cut_state  # mains present at start
        self._relay_busy = False
        # kvmd's MSD rules, with the images in the state dir (not the simulated board)
        self._msd = MsdStore(machine.state.msd_dir)

    @property
    def mains(self) -> bool:
        with self._lock:
            return self._relay != self.mains_cut_state

    # -- ATX ------------------------------------------------------------------------------

    def atx_state(self) -> AtxState:
        with self._lock:
            acts = self._atx.acts()
            return AtxState(True, any(acts.values()), self.machine.running, False,
                            power_busy=acts["power"], reset_busy=acts["reset"])

    def atx_power(self, action: str, wait: bool) -> None:
        button = atx_action_button(action, self.machine.running)
        if button is None:
            return  # kvmd: nothing to do answers 200, even while a press is running
        self.atx_click(button, wait)

    def atx_click(self, button: str, wait: bool) -> None:
        self._atx.claim(button)
        duration = self.long_press_s if button == "power_long" else self.press_s
        self._atx.press(button, duration, lambda: self._released(button), wait)

    def _released(self, button: str) -> None:
        try:
            if not self.mains:
                log.info("ATX %s ignored: mains are off", button)
                return
            if button == "power":
                if self.machine.running:
                    log.info("ATX power (short) while on: ACPI power button")
                    self.machine.powerdown()
                else:
                    log.info("ATX power while off: power on")
                    self.machine.start()
            elif button == "power_long":
                log.info("ATX power long: hard off")
                self.machine.quit()
            elif button == "reset" and self.machine.running:
                log.info("ATX reset")
                self.machine.reset()
        except HilError as e:
            log.error("ATX %s failed: %s", button, e)
            raise KvmdError(str(e)) from None

    # -- streamer / HID -----------------------------------------------------------------

    def snapshot(self) -> bytes:
        if not self.machine.running:
            raise KvmdUnavailableError("no video signal: the twin is powered off")
        try:
            return self.machine.screendump_jpeg()
        except HilError as e:
            raise KvmdUnavailableError(f"no video signal: {e}") from None

    def _hid(self, fn: object, *args: object) -> None:
        if not self.machine.running:
            raise KvmdError("the twin is powered off: no keyboard", "HidOfflineError")
        try:
            fn(*args)  # type: ignore[operator]
        except HilError as e:
            raise KvmdError(str(e), "HidError") from None

    def hid_print(self, text: str) -> None:
        self._hid(self.machine.type_text, text)

    def hid_send_key(self, key: str) -> None:
        self._hid(self.machine.send_key, key)

    def hid_send_shortcut(self, keys: Sequence[str]) -> None:
        self._hid(self.machine.send_shortcut, list(keys))

    # -- GPIO: the mains relay ------------------------------------------------------------

    def gpio_state(self) -> GpioState:
        with self._lock:
            ch = GpioChannel(self.relay_channel, self._relay, busy=self._relay_busy)
            fb = GpioChannel(FLASH_BIOS_CHANNEL, False, busy=False)
            return GpioState({ch.name: ch, fb.name: fb})

    def _check_gpio(self, channel: str) -> None:
        if channel == FLASH_BIOS_CHANNEL:
            return
        if channel != self.relay_channel:
            raise KvmdError(f"unknown GPIO channel {channel!r}", "GpioChannelNotFoundError")
        if self._relay_busy:
            raise KvmdBusyError(f"GPIO channel {channel!r} is busy", "GpioChannelIsBusyError")

    def _flash_bios(self) -> None:
        """MSI's Flash BIOS button: from standby, flash the chip from the USB drive."""
        drive = self.machine.usb_drive
        if self.machine.running or drive is None or not self.mains:
            log.info("Flash BIOS pressed, nothing happens (running=%s, drive=%s, mains=%s)",
                     self.machine.running, drive, self.mains)
            return
        if shutil.which("mcopy") is None:
            log.warning("Flash BIOS: mcopy (mtools) is missing; cannot read the drive")
            return
        chip = self.machine.state.chip
        with tempfile.TemporaryDirectory(prefix="flash-bios-") as tmp:
            rom = Path(tmp) / FLASH_BIOS_FILE
            res = subprocess.run(["mcopy", "-i", str(drive), f"::{FLASH_BIOS_FILE}", str(rom)],
                                 capture_output=True, text=True, check=False)
            if res.returncode != 0 or rom.stat().st_size != chip.stat().st_size:
                log.warning("Flash BIOS: no usable %s on the drive (%s)", FLASH_BIOS_FILE,
                            res.stderr.strip() or "wrong size")
                return
            tmp_chip = chip.with_suffix(".flash-bios")
            shutil.copyfile(rom, tmp_chip)
            tmp_chip.replace(chip)
        log.info("Flash BIOS: the chip was flashed from %s on the USB drive", FLASH_BIOS_FILE)

    def _set_relay(self, state: bool) -> None:
        with self._lock:
            self._relay = state
            cut = state == self.mains_cut_state
        if cut and self.machine.kill():
            log.info("mains cut: QEMU killed")
        elif not cut:
            log.info("mains restored (the machine stays off until powered on)")

    def gpio_switch(self, channel: str, state: bool, wait: bool) -> None:
        with self._lock:
            self._check_gpio(channel)
        if channel == FLASH_BIOS_CHANNEL:
            if state:
                self._flash_bios()
            return
        self._set_relay(state)

    def gpio_pulse(self, channel: str, delay: float | None, wait: bool) -> None:
        delay = 0.1 if delay is None else min(max(delay, 0.1), 30.0)
        if channel == FLASH_BIOS_CHANNEL:
            perform_op(self._flash_bios, wait, "flash-bios")
            return
        with self._lock:
            self._check_gpio(channel)
            self._relay_busy = True
        self._set_relay(True)

        def finish() -> None:
            time.sleep(delay)
            try:
                self._set_relay(False)
            finally:
                with self._lock:
                    self._relay_busy = False

        perform_op(finish, wait, "relay-pulse")

    # -- MSD ------------------------------------------------------------------------------

    def msd_state(self) -> MsdState:
        return self._msd.state()

    def msd_write(self, name: str, stream: BinaryIO, size: int | None) -> MsdImage:
        return self._msd.write(name, stream, size)

    def msd_set_params(self, image: str | None, cdrom: bool | None, rw: bool | None) -> None:
        self._msd.set_params(image, cdrom, rw)

    def msd_set_connected(self, connected: bool) -> None:
        self._msd.set_connected(connected)
        state = self._msd.state()
        try:
            if connected and state.image:
                self.machine.set_usb_drive(self._msd.dir / state.image,
                                           read_only=not state.rw)
            else:
                self.machine.set_usb_drive(None)
        except HilError as e:
            with contextlib.suppress(KvmdError):
                self._msd.set_connected(not connected)
            what = "plugged" if connected else "unplugged"
            raise KvmdError(f"the USB drive could not be {what}: {e}",
                            "MsdUnknownError") from e

    def msd_remove(self, name: str) -> None:
        self._msd.remove(name)

    def msd_reset(self) -> None:
        self._msd.reset()
        with contextlib.suppress(HilError):
            self.machine.set_usb_drive(None)
