"""kvmd's ATX busy rules, as the twin's backend and the simulated board both keep them.

kvmd holds the power and the reset button in two separate regions, refuses a press of a
busy button with AtxIsBusyError (409), keeps a region busy one second after the release,
and reports ``busy`` and ``acts`` in ``GET /api/atx``. The twin's machine is a recording
stand-in here: what is checked is the busy logic, not QEMU (the twin's power tests boot it).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from hil.core.timeout import wait_for
from hil.emulated.backend import QemuKvmdBackend
from hil.emulated.kvmd.atx import KVMD_SETTLE_S, AtxButtons
from hil.emulated.kvmd.server import KvmdBusyError, KvmdServer
from hil.emulated.kvmd.simulated import SimulatedBoardBackend

PRESS_S = 0.1
SETTLE_S = 0.8


class RecordingMachine:
    """What the twin backend asks of its QEMU machine, recorded with the time."""

    def __init__(self, state_dir: Path) -> None:
        self.state = SimpleNamespace(msd_dir=state_dir / "msd")
        self.running = False
        self.calls: list[tuple[str, float]] = []

    def _note(self, what: str) -> None:
        self.calls.append((what, time.monotonic()))

    def start(self) -> None:
        self._note("start")
        self.running = True

    def powerdown(self) -> None:
        self._note("powerdown")

    def quit(self) -> None:
        self._note("quit")
        self.running = False

    def reset(self) -> None:
        self._note("reset")


def twin_backend(tmp_path: Path) -> Any:
    return QemuKvmdBackend(RecordingMachine(tmp_path), press_s=PRESS_S, long_press_s=PRESS_S,
                           atx_settle_s=SETTLE_S)  # type: ignore[arg-type]


def sim_backend(tmp_path: Path) -> Any:
    return SimulatedBoardBackend(tmp_path / "msd", press_s=PRESS_S, long_press_s=PRESS_S,
                                 settle_s=SETTLE_S)


def test_the_two_buttons_are_separate_regions() -> None:
    atx = AtxButtons(settle_s=0)
    atx.claim("power")
    with pytest.raises(KvmdBusyError) as exc:
        atx.claim("power_long")  # the same button, pressed longer
    assert exc.value.status == 409 and exc.value.error == "AtxIsBusyError"
    atx.claim("reset")  # the other button is free
    assert atx.acts() == {"power": True, "reset": True} and atx.busy
    with pytest.raises(KvmdBusyError):
        atx.claim("reset")


def test_production_settle_time_is_kvmds() -> None:
    assert KVMD_SETTLE_S == 1.0
    assert AtxButtons().settle_s == 1.0


@pytest.mark.parametrize("make", [twin_backend, sim_backend], ids=["twin", "simulated"])
def test_a_button_stays_busy_after_release_and_the_other_is_free(make: Any,
                                                                 tmp_path: Path) -> None:
    b = make(tmp_path)
    t0 = time.monotonic()
    b.atx_click("power", wait=False)
    st = b.atx_state()
    assert st.busy and st.power_busy and not st.reset_busy
    with pytest.raises(KvmdBusyError) as exc:
        b.atx_click("power", wait=False)
    assert exc.value.error == "AtxIsBusyError"
    # past the press, still inside the settle window: the press has acted, still busy
    wait_for(lambda: b.atx_state().power_led, 5, "the power press took effect",
             interval=0.02, max_interval=0.05)
    acted = time.monotonic() - t0
    assert acted >= PRESS_S
    assert b.atx_state().power_busy, "busy ended at the release; kvmd holds it 1 s longer"
    b.atx_click("reset", wait=False)  # the reset button is its own region
    assert b.atx_state().reset_busy
    wait_for(lambda: not b.atx_state().busy, 5, "both buttons free again")
    assert time.monotonic() - t0 >= PRESS_S + SETTLE_S
    b.atx_click("power_long", wait=True)  # free again: accepted
    assert not b.atx_state().power_led


def test_a_failed_press_still_frees_its_button(tmp_path: Path) -> None:
    b = twin_backend(tmp_path)

    def broken() -> None:
        from hil.core.errors import HilError

        raise HilError("QMP is gone")

    b.machine.start = broken
    with pytest.raises(Exception, match="QMP is gone"):
        b.atx_click("power", wait=True)
    assert not b.atx_state().busy


def test_atx_state_json_has_kvmds_acts(tmp_path: Path) -> None:
    sim = sim_backend(tmp_path)
    with KvmdServer(sim, user="admin", password="pw-for-this-test") as srv:
        auth = {"X-KVMD-User": "admin", "X-KVMD-Passwd": "pw-for-this-test"}
        r = requests.post(f"{srv.url}/api/atx/click?button=reset&wait=0", headers=auth,
                          timeout=5, verify=False)
        assert r.status_code == 200
        state = requests.get(f"{srv.url}/api/atx", headers=auth, timeout=5,
                             verify=False).json()["result"]
        assert state["busy"] is True and state["acts"] == {"power": False, "reset": True}
        again = requests.post(f"{srv.url}/api/atx/click?button=reset&wait=0", headers=auth,
                              timeout=5, verify=False)
        assert again.status_code == 409
        assert again.json()["result"]["error"] == "AtxIsBusyError"


def test_responses_are_not_held_back_by_nagle(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The server writes headers and body separately; without TCP_NODELAY the body waited
    for the client's delayed ACK: 44 ms per keep-alive request instead of 0.9 ms."""
    import socket

    from hil.emulated.kvmd import server as kvmd_server

    seen: list[int] = []
    orig = kvmd_server._QuietThreadingServer.finish_request

    def spy(self: Any, request: Any, client_address: Any) -> None:
        orig(self, request, client_address)
        seen.append(request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(kvmd_server._QuietThreadingServer, "finish_request", spy)
    with KvmdServer(sim_backend(tmp_path), user="admin", password="pw-for-this-test") as srv:
        r = requests.get(f"{srv.url}/api/atx", timeout=5, verify=False,
                         headers={"X-KVMD-User": "admin", "X-KVMD-Passwd": "pw-for-this-test",
                                  "Connection": "close"})
        assert r.status_code == 200
        wait_for(lambda: seen, 5, "the connection to be finished")
    assert seen[0] != 0
