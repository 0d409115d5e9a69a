"""`force_off` is part of the power protocol: `Target.force_off` asks the board's power
part for it, instead of probing the ATX part with getattr and falling back to raw kvmd."""

from __future__ import annotations

import pytest

from hil.core.errors import ConfigError
from hil.core.inventory import load
from hil.core.target import Target
from hil.drivers.power import AtxControl, BoardPower, PowerControl, PowerState


class RecordingAtx:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on(self) -> None:
        self.calls.append("on")

    def off(self) -> None:
        self.calls.append("off")

    def force_off(self) -> None:
        self.calls.append("force_off")

    def reset(self) -> None:
        self.calls.append("reset")

    def state(self) -> PowerState:
        return PowerState.OFF


def test_target_force_off_holds_the_button_through_the_power_part() -> None:
    atx = RecordingAtx()
    power = BoardPower(atx)
    assert isinstance(power, PowerControl)
    target = Target(load().board("emulated"), power=power)
    target.force_off()
    assert atx.calls == ["force_off"]  # a hold, not the graceful press


def test_force_off_without_buttons_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        BoardPower(None).force_off()


def test_the_atx_protocol_declares_force_off() -> None:
    assert "force_off" in dir(AtxControl) and "force_off" in dir(PowerControl)
