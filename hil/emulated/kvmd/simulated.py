"""The simulated board: a test double behind the kvmd API, for everything that talks to a
PiKVM (client, power, CLI tests) without hardware or QEMU.

The production twin does not use it: its backend (`hil.emulated.backend`) drives QEMU and
shares only kvmd's MSD rules (`hil.emulated.kvmd.msd`). ``python -m
hil.emulated.kvmd.simulated`` serves one on loopback, to try clients by hand.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from hil.drivers.pikvm import AtxState, GpioChannel, GpioState, MsdImage, MsdState
from hil.emulated.kvmd.atx import AtxButtons
from hil.emulated.kvmd.msd import MsdStore
from hil.emulated.kvmd.server import (
    KvmdBusyError,
    KvmdError,
    KvmdServer,
    KvmdUnavailableError,
    atx_action_button,
    perform_op,
)


class SimulatedBoardBackend:
    """An in-memory board behind a PiKVM, for tests of everything that talks to kvmd.

    State machine: the power LED follows ATX presses (a short power press boots an off
    board or shuts a running one down, unless `soft_off_works` is False, simulating a hung
    OS; a long press forces it off; reset counts reboots).

    Busy as kvmd's ATX: a press holds the button `press_s` (`long_press_s` for
    power_long; kvmd: 0.1 and 5.5 s), its effect shows when it is released, and the
    button stays busy `settle_s` longer (kvmd: 1 s). The power and reset buttons are
    busy separately (kvmd's two regions) and ``busy`` is either. A press of a busy button
    gets 409; ``atx/power`` first looks at the LED, so an action with nothing to do
    answers 200 even while busy (kvmd does: ``on`` during a long press is "done").

    GPIO output channels are booleans. An operation keeps its channel busy (409 to
    others) `gpio_busy_s` after the write (kvmd's ``busy_delay``, 0.2 s), and kvmd
    reports ``state: false`` for a busy channel whatever the pin is. The channel
    `mains_channel` is a mains relay: in state
    `mains_cut_state` the board loses power (LED off, presses do nothing) and when power
    returns it stays off unless `power_on_after_restore`. MSD images are files in
    `msd_dir`. The snapshot is a generated JPEG showing the board's state; with the board
    off or `streamer_available` False it is unavailable (503), as on a real PiKVM.
    """

    def __init__(
        self,
        msd_dir: str | Path,
        *,
        press_s: float = 0.1,
        long_press_s: float = 0.3,
        settle_s: float = 0.0,  # kvmd: KVMD_SETTLE_S; tests that do not time it: 0
        gpio_busy_s: float = 0.0,
        gpio_channels: Iterable[str] = ("relay",),
        mains_channel: str | None = "relay",
        mains_cut_state: bool = True,
        power_on_after_restore: bool = False,
        soft_off_works: bool = True,
        power_led: bool = False,
        msd_storage_size: int = 1 << 30,
    ) -> None:
        self.msd_dir = Path(msd_dir)
        self.msd_dir.mkdir(parents=True, exist_ok=True)
        self.press_s = press_s
        self.long_press_s = long_press_s
        self.gpio_busy_s = gpio_busy_s
        self.mains_channel = mains_channel
        self.mains_cut_state = mains_cut_state
        self.power_on_after_restore = power_on_after_restore
        self.soft_off_works = soft_off_works
        self.atx_enabled = True
        self.streamer_available = True
        self.power_led = power_led
        self.hdd_led = False
        self.boots = 1 if power_led else 0
        self.resets = 0
        self.hid_log: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._atx = AtxButtons(settle_s, self._lock)  # kvmd's two button regions
        channels = list(gpio_channels)
        if mains_channel and mains_channel not in channels:
            channels.append(mains_channel)
        self._gpio: dict[str, bool] = {c: False for c in channels}
        if mains_channel:
            self._gpio[mains_channel] = not mains_cut_state
        self._gpio_busy: set[str] = set()
        self.msd = MsdStore(self.msd_dir, msd_storage_size)

    # -- mains ----------------------------------------------------------------------------

    @property
    def mains(self) -> bool:
        """True while the (simulated) PSU has mains power."""
        with self._lock:
            if not self.mains_channel:
                return True
            return self._gpio[self.mains_channel] != self.mains_cut_state

    def _mains_changed(self, on: bool) -> None:
        if not on:
            self.power_led = False
            self.hdd_led = False
        elif self.power_on_after_restore and not self.power_led:
            self.power_led = True
            self.boots += 1

    # -- ATX --------------------------------------------------------------------------------

    def atx_state(self) -> AtxState:
        with self._lock:
            acts = self._atx.acts()
            return AtxState(self.atx_enabled, any(acts.values()), self.power_led, self.hdd_led,
                            power_busy=acts["power"], reset_busy=acts["reset"])

    def atx_power(self, action: str, wait: bool) -> None:
        with self._lock:  # decide and claim the button atomically
            if not self.atx_enabled:
                raise KvmdError("ATX is disabled", "AtxDisabledError")
            button = atx_action_button(action, self.power_led)
            if button is None:
                return  # kvmd: nothing to do, even while a press is running
            self._claim(button)
        self._run_press(button, wait)

    def _claim(self, button: str) -> None:
        if not self.atx_enabled:
            raise KvmdError("ATX is disabled", "AtxDisabledError")
        self._atx.claim(button)

    def atx_click(self, button: str, wait: bool) -> None:
        with self._lock:
            self._claim(button)
        self._run_press(button, wait)

    def _run_press(self, button: str, wait: bool) -> None:
        duration = self.long_press_s if button == "power_long" else self.press_s
        self._atx.press(button, duration, lambda: self._released(button), wait)

    def _released(self, button: str) -> None:
        with self._lock:
            if not self.mains:  # a dead PSU ignores the buttons
                return
            if button == "power":
                if not self.power_led:
                    self.power_led = True
                    self.boots += 1
                elif self.soft_off_works:
                    self.power_led = False
            elif button == "power_long":
                self.power_led = False
            elif button == "reset" and self.power_led:
                self.resets += 1
                self.boots += 1

    # -- streamer -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        from PIL import Image, ImageDraw

        with self._lock:
            if not self.streamer_available or not self.power_led:
                raise KvmdUnavailableError("no video signal from the board")
            typed = "".join(t for kind, t in self.hid_log if kind == "print")[-60:]
            text = f"wpp-sim boot #{self.boots} resets {self.resets}\n{typed}"
        img = Image.new("RGB", (640, 480), (0, 0, 96))
        ImageDraw.Draw(img).multiline_text((20, 20), text, fill=(255, 255, 255))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
        return out.getvalue()

    # -- HID --------------------------------------------------------------------------------

    def hid_print(self, text: str) -> None:
        with self._lock:
            self.hid_log.append(("print", text))

    def hid_send_key(self, key: str) -> None:
        with self._lock:
            self.hid_log.append(("key", key))

    def hid_send_shortcut(self, keys: Sequence[str]) -> None:
        with self._lock:
            self.hid_log.append(("shortcut", ",".join(keys)))

    # -- GPIO -------------------------------------------------------------------------------

    def gpio_state(self) -> GpioState:
        with self._lock:
            return GpioState(
                {
                    # kvmd does not read a busy channel: it reports state false
                    name: GpioChannel(name, state and name not in self._gpio_busy,
                                      busy=name in self._gpio_busy)
                    for name, state in self._gpio.items()
                }
            )

    def gpio_pin(self, channel: str) -> bool:
        """The channel's real output, which kvmd hides while the channel is busy."""
        with self._lock:
            return self._gpio[channel]

    def _gpio_set(self, channel: str, state: bool) -> None:
        with self._lock:
            before = self.mains
            self._gpio[channel] = state
            after = self.mains
            if before != after:
                self._mains_changed(after)

    def _check_gpio(self, channel: str) -> None:
        if channel not in self._gpio:
            raise KvmdError(f"unknown GPIO channel {channel!r}", "GpioChannelNotFoundError")
        if channel in self._gpio_busy:
            raise KvmdBusyError(f"GPIO channel {channel!r} is busy", "GpioChannelIsBusyError")

    def gpio_switch(self, channel: str, state: bool, wait: bool) -> None:
        with self._lock:
            self._check_gpio(channel)
            self._gpio_busy.add(channel)
            self._gpio_set(channel, state)

        def settle() -> None:
            time.sleep(self.gpio_busy_s)
            with self._lock:
                self._gpio_busy.discard(channel)

        perform_op(settle, wait, f"gpio-switch-{channel}")

    def gpio_pulse(self, channel: str, delay: float | None, wait: bool) -> None:
        delay = 0.1 if delay is None else min(max(delay, 0.1), 10.0)
        with self._lock:
            self._check_gpio(channel)
            self._gpio_busy.add(channel)
            self._gpio_set(channel, True)

        def finish() -> None:
            time.sleep(delay)
            with self._lock:
                self._gpio_set(channel, False)
            time.sleep(self.gpio_busy_s)
            with self._lock:
                self._gpio_busy.discard(channel)

        perform_op(finish, wait, f"gpio-pulse-{channel}")

    # -- MSD (kvmd's rules, shared with the twin: hil.emulated.kvmd.msd) ---------------------

    def msd_state(self) -> MsdState:
        return self.msd.state()

    def msd_write(self, name: str, stream: BinaryIO, size: int | None) -> MsdImage:
        return self.msd.write(name, stream, size)

    def msd_set_params(self, image: str | None, cdrom: bool | None, rw: bool | None) -> None:
        self.msd.set_params(image, cdrom, rw)

    def msd_set_connected(self, connected: bool) -> None:
        self.msd.set_connected(connected)

    def msd_remove(self, name: str) -> None:
        self.msd.remove(name)

    def msd_reset(self) -> None:
        self.msd.reset()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hil.emulated.kvmd.simulated``: serve a simulated board, to try clients by hand.

    The password comes from an environment variable (never the command line, which other
    users can read in ps).
    """
    import argparse
    import os
    import signal
    import tempfile

    ap = argparse.ArgumentParser(description="loopback kvmd API over a simulated board")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password-env", default="KVMD_PASSWORD",
                    help="environment variable holding the password (default: %(default)s; "
                    "unset: 'admin')")
    ap.add_argument("--msd-dir", type=Path, default=None)
    ap.add_argument("--cert", type=Path, default=None)
    ap.add_argument("--key", type=Path, default=None)
    args = ap.parse_args(argv)
    msd_dir = args.msd_dir or Path(tempfile.mkdtemp(prefix="kvmd-msd-"))
    backend = SimulatedBoardBackend(msd_dir, press_s=0.1, long_press_s=5.5, settle_s=1.0,
                                    gpio_busy_s=0.2)  # kvmd's defaults
    password = os.environ.get(args.password_env, "admin")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with KvmdServer(backend, user=args.user, password=password, host=args.host,
                    port=args.port, certfile=args.cert, keyfile=args.key) as srv:
        print(f"kvmd listening on {srv.url} (MSD images in {msd_dir})", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
