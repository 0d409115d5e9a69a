"""The board's power as one object: ATX buttons plus a real mains cut.

Two different things are called "power" on the bench and tests must not confuse them:
the ATX buttons (PiKVM presses power/reset, the PSU keeps standby power) and the mains
(a PiKVM GPIO relay or a smart plug removes AC, which is what a WPP power-loss test
needs). `BoardPower` composes one part of each kind behind the `PowerControl` protocol;
the inventory factory decides which parts a board has.

Mains cuts hold power off for a while (15 s by default on the real board: shorter cuts
were seen to leave the PSU in unstable states) and show progress while holding.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from hil.errors import ConfigError, HilError
from hil.pikvm import PiKvmClient
from hil.plug import TasmotaPlug
from hil.progress import Progress
from hil.timeout import Deadline

DEFAULT_HOLD_S = 15.0


class PowerState(enum.Enum):
    """What `PowerControl.state()` reports. CUT wins over ON/OFF: no mains, no board."""

    ON = "on"
    OFF = "off"
    CUT = "cut"
    UNKNOWN = "unknown"


class PowerError(HilError):
    """The board did not reach the requested power state."""


@runtime_checkable
class PowerControl(Protocol):
    """Everything the bench does with a board's power."""

    def on(self) -> None:
        """Boot the board (ATX power press if it is off); no-op when already on."""

    def off(self) -> None:
        """Shut the board down (graceful press, forced after a timeout)."""

    def reset(self) -> None:
        """Press reset (the board must be on)."""

    def cut(self, hold_s: float | None = None, *, stay_cut: bool = False) -> None:
        """Remove mains power, hold it off `hold_s` s, then restore it unless `stay_cut`."""

    def restore(self) -> None:
        """Give mains power back (the board stays off until `on`, per its BIOS setting)."""

    def state(self) -> PowerState: ...


class AtxControl(Protocol):
    """The button half of a board's power."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    def reset(self) -> None: ...

    def state(self) -> PowerState: ...


class MainsSwitch(Protocol):
    """The mains half: something that really removes AC from the PSU."""

    def cut(self) -> None: ...

    def restore(self) -> None: ...

    def is_cut(self) -> bool: ...


# ----------------------------------------------------------------------------- ATX via PiKVM


class PikvmAtx:
    """ATX buttons through PiKVM; states come from the power LED wired to the PiKVM.

    `off()` first asks the OS to shut down (short press) and waits `off_timeout`
    seconds for the LED to go dark, then holds the button (``off_hard``).
    """

    def __init__(
        self,
        client: PiKvmClient,
        *,
        on_timeout: float = 15.0,
        off_timeout: float = 60.0,
        hard_off_timeout: float = 15.0,
        poll_s: float = 0.5,
    ) -> None:
        self.client = client
        self.on_timeout = on_timeout
        self.off_timeout = off_timeout
        self.hard_off_timeout = hard_off_timeout
        self.poll_s = poll_s

    def __repr__(self) -> str:
        return f"PikvmAtx({self.client!r})"

    def _led(self) -> bool:
        st = self.client.atx_state()
        if not st.enabled:
            raise PowerError(
                f"ATX is disabled on the PiKVM at {self.client.url}",
                "enable ATX in the PiKVM's kvmd configuration (and wire the ATX board)",
            )
        return st.power_led

    def state(self) -> PowerState:
        try:
            return PowerState.ON if self._led() else PowerState.OFF
        except PowerError:
            return PowerState.UNKNOWN

    def on(self) -> None:
        if self._led():
            return
        self.client.atx_power("on", wait=True)
        lit = self.client.wait_power_led(True, self.on_timeout, self.poll_s)
        if not lit:
            raise PowerError(
                f"the board's power LED stayed off {self.on_timeout:g} s after pressing power",
                "is mains power on (not cut)? is the power LED cable wired to the PiKVM?",
            )

    def off(self) -> None:
        if not self._led():
            return
        self.client.atx_power("off", wait=True)
        still_on = self.client.wait_power_led(False, self.off_timeout, self.poll_s)
        if still_on:
            self.force_off()

    def force_off(self) -> None:
        """Hold the power button until the board is off (no OS shutdown)."""
        if not self._led():
            return
        self.client.atx_power("off_hard", wait=True)
        still_on = self.client.wait_power_led(False, self.hard_off_timeout, self.poll_s)
        if still_on:
            raise PowerError(
                "the board's power LED is still on after holding the power button",
                "check the ATX cabling; cut mains power to force it off",
            )

    def reset(self) -> None:
        if not self._led():
            raise PowerError("cannot reset: the board is off", "power it on first")
        self.client.atx_power("reset_hard", wait=True)


# ----------------------------------------------------------------------------- mains switches


class PikvmGpioRelay:
    """A mains relay on a PiKVM GPIO output channel.

    `cut_state` is the channel state that removes mains (True for a normally-closed relay
    that opens when energised).
    """

    def __init__(self, client: PiKvmClient, channel: str, *, cut_state: bool = True) -> None:
        self.client = client
        self.channel = channel
        self.cut_state = cut_state

    def __repr__(self) -> str:
        return f"PikvmGpioRelay({self.client!r}, channel={self.channel!r})"

    def cut(self) -> None:
        self.client.gpio_switch(self.channel, self.cut_state, wait=True)

    def restore(self) -> None:
        self.client.gpio_switch(self.channel, not self.cut_state, wait=True)

    def is_cut(self) -> bool:
        channels = self.client.gpio_state().channels
        ch = channels.get(self.channel)
        if ch is None:
            raise ConfigError(
                f"the PiKVM at {self.client.url} has no GPIO channel {self.channel!r}",
                f"known channels: {', '.join(sorted(channels)) or 'none'}",
            )
        return ch.state == self.cut_state


class PlugMains:
    """A smart plug as the mains switch (off = cut)."""

    def __init__(self, plug: TasmotaPlug) -> None:
        self.plug = plug

    def __repr__(self) -> str:
        return f"PlugMains({self.plug!r})"

    def cut(self) -> None:
        self.plug.off()

    def restore(self) -> None:
        self.plug.on()

    def is_cut(self) -> bool:
        return not self.plug.is_on()


# ----------------------------------------------------------------------------- the board


class BoardPower:
    """A board's `PowerControl`, composed from an ATX part and a mains part.

    Either part may be missing (a board with only a smart plug has no buttons); asking
    for the missing part raises `ConfigError`. `hold_s` is the default mains-off time of
    `cut()`; `settle_s` is how long `cycle()` lets the PSU settle after mains returns
    before pressing power.
    """

    def __init__(
        self,
        atx: AtxControl | None = None,
        mains: MainsSwitch | None = None,
        *,
        hold_s: float = DEFAULT_HOLD_S,
        settle_s: float = 2.0,
        show_progress: bool = True,
        name: str = "board",
    ) -> None:
        self.atx = atx
        self.mains = mains
        self.hold_s = hold_s
        self.settle_s = settle_s
        self.show_progress = show_progress
        self.name = name

    def __repr__(self) -> str:
        return f"BoardPower(name={self.name!r}, atx={self.atx!r}, mains={self.mains!r})"

    def _need_atx(self) -> AtxControl:
        if self.atx is None:
            raise ConfigError(
                f"{self.name} has no ATX power control",
                "add a PiKVM with ATX to the board in inventory.yaml",
            )
        return self.atx

    def _need_mains(self) -> MainsSwitch:
        if self.mains is None:
            raise ConfigError(
                f"{self.name} has no way to cut mains power",
                "add a PiKVM GPIO relay or a smart plug to the board in inventory.yaml",
            )
        return self.mains

    def _check_not_cut(self, what: str) -> None:
        if self.mains is not None and self.mains.is_cut():
            raise PowerError(
                f"cannot {what} {self.name}: its mains power is cut",
                "restore mains first ('hil power restore')",
            )

    def on(self) -> None:
        atx = self._need_atx()
        self._check_not_cut("power on")
        atx.on()

    def off(self) -> None:
        self._need_atx().off()

    def reset(self) -> None:
        atx = self._need_atx()
        self._check_not_cut("reset")
        atx.reset()

    def restore(self) -> None:
        self._need_mains().restore()

    def cut(self, hold_s: float | None = None, *, stay_cut: bool = False) -> None:
        mains = self._need_mains()
        hold = self.hold_s if hold_s is None else hold_s
        if hold < 0:
            raise ConfigError(f"hold time must not be negative, got {hold:g} s")
        mains.cut()
        if stay_cut:
            return
        try:
            self._hold(hold)
        finally:
            # Also on Ctrl-C: never leave the bench without power by accident.
            mains.restore()

    def _hold(self, seconds: float) -> None:
        progress = Progress(f"{self.name} power") if self.show_progress else None
        deadline = Deadline(seconds)
        message = f"mains cut, holding {seconds:g} s"
        while not deadline.expired:
            if progress:
                progress.update(message, deadline.elapsed / seconds if seconds else 1.0)
            deadline.sleep(0.25)
        if progress:
            progress.done(f"mains restored after {deadline.elapsed:.1f} s")

    def cycle(self, hold_s: float | None = None) -> None:
        """A real power cycle: cut mains, hold, restore, let the PSU settle, press power.

        Without ATX control the board must power itself on (BIOS "restore on AC loss").
        """
        self.cut(hold_s)
        if self.atx is not None:
            Deadline(self.settle_s).sleep(self.settle_s)
            self.atx.on()

    def state(self) -> PowerState:
        if self.mains is not None and self.mains.is_cut():
            return PowerState.CUT
        if self.atx is None:
            return PowerState.UNKNOWN
        return self.atx.state()


__all__ = [
    "DEFAULT_HOLD_S",
    "AtxControl",
    "BoardPower",
    "MainsSwitch",
    "PikvmAtx",
    "PikvmGpioRelay",
    "PlugMains",
    "PowerControl",
    "PowerError",
    "PowerState",
]
