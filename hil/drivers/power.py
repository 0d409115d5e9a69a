"""The board's power as one object: ATX buttons plus a real mains cut.

Two different things are called "power" on the bench and tests must not confuse them:
the ATX buttons (PiKVM presses power/reset, the PSU keeps standby power) and the mains
(a PiKVM GPIO relay or a smart plug removes AC, which is what a WPP power-loss test
needs). `BoardPower` composes one part of each kind behind the `PowerControl` protocol;
the inventory factory decides which parts a board has.

Mains cuts hold power off for a while (15 s by default on the real board: shorter cuts
were seen to leave the PSU in unstable states) and show progress while holding.

Nothing here reports an outcome it has not seen: ATX actions decide from the power LED
only once no button press is in progress (a long press lasts ~5.5 s, and the LED stays
lit until its end), a relay switch is read back before it counts, and "mains restored"
is printed after the restore succeeded; a failed restore says that mains are left cut.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from hil.core.errors import ConfigError, HilError
from hil.core.progress import Progress
from hil.core.timeout import Deadline
from hil.drivers.pikvm import PiKvmBusyError, PiKvmClient, PiKvmDeliveryUnknownError
from hil.drivers.plug import TasmotaPlug

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

    def force_off(self) -> None:
        """Hold the power button until the board is off (no OS shutdown)."""

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

    def force_off(self) -> None: ...

    def reset(self) -> None: ...

    def state(self) -> PowerState: ...


class MainsSwitch(Protocol):
    """The mains half: something that really removes AC from the PSU."""

    def cut(self) -> None: ...

    def restore(self) -> None: ...

    def is_cut(self) -> bool: ...

    def restore_hint(self) -> str:
        """How a person gives mains back by hand, for a failed restore's hint."""
        ...


# ----------------------------------------------------------------------------- ATX via PiKVM


class PikvmAtx:
    """ATX buttons through PiKVM; states come from the power LED wired to the PiKVM.

    `off()` first asks the OS to shut down (short press) and waits `off_timeout`
    seconds for the LED to go dark, then holds the button (``off_hard``).

    Every action first waits until no press is in progress (up to `busy_timeout`,
    longer than kvmd's 5.5 s long press plus 1 s settle): the LED during a press is not
    its outcome, and kvmd would refuse a second press with 409. Each action ends the
    same way, so it never returns while a press it started still runs.
    """

    def __init__(
        self,
        client: PiKvmClient,
        *,
        on_timeout: float = 15.0,
        off_timeout: float = 60.0,
        hard_off_timeout: float = 15.0,
        busy_timeout: float = 20.0,
        poll_s: float = 0.5,
    ) -> None:
        self.client = client
        self.on_timeout = on_timeout
        self.off_timeout = off_timeout
        self.hard_off_timeout = hard_off_timeout
        self.busy_timeout = busy_timeout
        self.poll_s = poll_s

    def __repr__(self) -> str:
        return f"PikvmAtx({self.client!r})"

    def _led(self) -> bool:
        """The power LED once no press is in progress."""
        try:
            st = self.client.wait_atx_idle(self.busy_timeout, min(self.poll_s, 0.1))
        except PiKvmBusyError as exc:
            raise PowerError(
                f"a button press is still in progress on the PiKVM at {self.client.url} "
                f"after {self.busy_timeout:g} s: the board's power state is not settled",
                exc.hint,
            ) from None
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

    def _press(self, action: str) -> bool:
        """``atx/power`` `action`; False when the connection broke and kvmd's state does
        not tell whether the press happened (it is not repeated: a second press would
        toggle the board back). The caller's LED wait decides then."""
        try:
            self.client.atx_power(action, wait=True)
        except PiKvmDeliveryUnknownError:
            return False
        return True

    def _unsure(self, delivered: bool) -> str:
        return "" if delivered else (
            " (the connection to the PiKVM broke during the press, which was not repeated)"
        )

    def on(self) -> None:
        if self._led():
            return
        delivered = self._press("on")
        lit = self.client.wait_power_led(True, self.on_timeout, self.poll_s)
        if not lit or not self._led():
            raise PowerError(
                f"the board's power LED stayed off {self.on_timeout:g} s after pressing "
                f"power{self._unsure(delivered)}",
                "is mains power on (not cut)? is the power LED cable wired to the PiKVM?",
            )

    def off(self) -> None:
        if not self._led():
            return
        self._press("off")
        still_on = self.client.wait_power_led(False, self.off_timeout, self.poll_s)
        if still_on or self._led():
            self.force_off()

    def force_off(self) -> None:
        """Hold the power button until the board is off (no OS shutdown)."""
        if not self._led():
            return
        delivered = self._press("off_hard")
        still_on = self.client.wait_power_led(False, self.hard_off_timeout, self.poll_s)
        if still_on or self._led():
            raise PowerError(
                "the board's power LED is still on after holding the power button"
                + self._unsure(delivered),
                "check the ATX cabling; cut mains power to force it off",
            )

    def reset(self) -> None:
        if not self._led():
            raise PowerError("cannot reset: the board is off", "power it on first")
        if not self._press("reset_hard"):
            raise PowerError(
                "the connection to the PiKVM broke while pressing reset, and kvmd's state "
                "does not show whether it was pressed; it was not pressed again",
                "check the board's console or screen before resetting again",
            )
        self._led()  # returns once the press is over


# ----------------------------------------------------------------------------- mains switches


class PikvmGpioRelay:
    """A mains relay on a PiKVM GPIO output channel.

    `cut_state` is the channel state that removes mains: it depends on the wiring
    (True: the relay opens the mains when the channel is on, e.g. a normally-closed
    contact; False: the channel must be on for the board to have mains, a normally-open
    contact). The inventory's ``power_cut.cut_state`` sets it; True is the default.
    A switch counts only once the channel reads back at the new state (kvmd reports a
    busy channel as ``false``, so the state is read when it is not busy).
    """

    def __init__(self, client: PiKvmClient, channel: str, *, cut_state: bool = True) -> None:
        self.client = client
        self.channel = channel
        self.cut_state = cut_state

    def __repr__(self) -> str:
        return (f"PikvmGpioRelay({self.client!r}, channel={self.channel!r}, "
                f"cut_state={self.cut_state!r})")

    def _switch(self, cut: bool) -> None:
        state = self.cut_state if cut else not self.cut_state
        self.client.gpio_switch(self.channel, state, wait=True)
        if self.is_cut() != cut:
            raise PowerError(
                f"GPIO channel {self.channel!r} of the PiKVM at {self.client.url} did not "
                f"stay at {str(state).lower()} after switching it",
                "is something else switching the relay (a kvmd GPIO rule, the web UI)?",
            )

    def cut(self) -> None:
        self._switch(True)

    def restore(self) -> None:
        self._switch(False)

    def is_cut(self) -> bool:
        ch = self.client.gpio_channel(self.channel)
        if ch is None:
            channels = self.client.gpio_state().channels
            raise ConfigError(
                f"the PiKVM at {self.client.url} has no GPIO channel {self.channel!r}",
                f"known channels: {', '.join(sorted(channels)) or 'none'}",
            )
        return ch.state == self.cut_state

    def restore_hint(self) -> str:
        return (f"switch GPIO channel {self.channel!r} to {str(not self.cut_state).lower()} "
                "in the PiKVM web UI")


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

    def restore_hint(self) -> str:
        return f"switch the smart plug at {self.plug.url} on"


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

    def force_off(self) -> None:
        self._need_atx().force_off()

    def reset(self) -> None:
        atx = self._need_atx()
        self._check_not_cut("reset")
        atx.reset()

    def restore(self) -> None:
        mains = self._need_mains()
        try:
            mains.restore()
        except HilError as exc:
            raise self._left_cut(mains, exc) from exc

    def _left_cut(self, mains: MainsSwitch, exc: HilError) -> PowerError:
        """The error for a failed restore: it says plainly that mains stay cut, and how
        to give them back (the board cannot be powered on until then)."""
        hint = f"restore them with 'hil power restore --board {self.name}', or " + (
            mains.restore_hint())
        if exc.hint:
            hint += f" (cause: {exc.hint})"
        return PowerError(f"restoring mains of {self.name} failed, mains are left CUT: {exc}",
                          hint)

    def cut(self, hold_s: float | None = None, *, stay_cut: bool = False) -> None:
        mains = self._need_mains()
        hold = self.hold_s if hold_s is None else hold_s
        if hold < 0:
            raise ConfigError(f"hold time must not be negative, got {hold:g} s")
        mains.cut()
        if stay_cut:
            return
        progress = Progress(f"{self.name} power") if self.show_progress else None
        deadline = Deadline(hold)
        try:
            self._hold(deadline, progress)
        finally:
            # Also on Ctrl-C: never leave the bench without power by accident; and say
            # what happened only once it has.
            try:
                mains.restore()
            except HilError as exc:
                if progress:
                    progress.done("restoring mains FAILED: mains are left cut")
                raise self._left_cut(mains, exc) from exc
            if progress:
                progress.done(f"mains restored after {deadline.elapsed:.1f} s off")

    def _hold(self, deadline: Deadline, progress: Progress | None) -> None:
        seconds = deadline.seconds
        message = f"mains cut, holding {seconds:g} s"
        while not deadline.expired:
            if progress:
                progress.update(message, deadline.elapsed / seconds if seconds else 1.0)
            deadline.sleep(0.25)

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
