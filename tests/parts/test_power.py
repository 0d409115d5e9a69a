"""hil.drivers.power and hil.drivers.plug against real loopback servers: the kvmd server
with a simulated board, and a small Tasmota-style smart plug HTTP server defined here."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pikvm_fixtures
import pytest
from pikvm_fixtures import PASSWORD, USER, free_port

from hil.core.errors import ConfigError
from hil.drivers.pikvm import PiKvmClient
from hil.drivers.plug import PlugError, TasmotaPlug
from hil.drivers.power import (
    BoardPower,
    PikvmAtx,
    PikvmGpioRelay,
    PlugMains,
    PowerControl,
    PowerError,
    PowerState,
)
from hil.emulated.kvmd.server import KvmdServer
from hil.emulated.kvmd.simulated import SimulatedBoardBackend

sim_board = pikvm_fixtures.sim_board
kvmd = pikvm_fixtures.kvmd
client = pikvm_fixtures.client

PLUG_PASSWORD = "plug-Secret-77"

# ----------------------------------------------------------------------------- fake plug


class TasmotaFake:
    """A loopback Tasmota HTTP command endpoint: ``/cm?cmnd=Power[ On|Off]``."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.on = True
        self.user = user
        self.password = password
        self.commands: list[tuple[float, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if parts.path != "/cm":
                    return self._send(404, b"not found")
                if fake.password is not None and (
                    q.get("user") != fake.user or q.get("password") != fake.password
                ):
                    return self._json({"WARNING": "Need user=<username>&password=<password>"})
                cmnd = q.get("cmnd", "")
                fake.commands.append((time.monotonic(), cmnd))
                word, _, arg = cmnd.partition(" ")
                if word.lower() != "power":
                    return self._json({"Command": "Unknown"})
                if arg.lower() in ("on", "1"):
                    fake.on = True
                elif arg.lower() in ("off", "0"):
                    fake.on = False
                return self._json({"POWER": "ON" if fake.on else "OFF"})

            def _json(self, obj: object) -> None:
                self._send(200, json.dumps(obj).encode(), "application/json")

            def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def plug_server() -> Iterator[TasmotaFake]:
    fake = TasmotaFake(user="admin", password=PLUG_PASSWORD)
    yield fake
    fake.stop()


@pytest.fixture
def board(client: PiKvmClient) -> BoardPower:
    return BoardPower(
        PikvmAtx(client, on_timeout=2, off_timeout=0.5, hard_off_timeout=2, poll_s=0.05),
        PikvmGpioRelay(client, "relay"),
        hold_s=0.3,
        settle_s=0.0,
        show_progress=False,
        name="sim",
    )


# ----------------------------------------------------------------------------- ATX


def test_pikvm_atx_on_off_reset(client: PiKvmClient, sim_board: SimulatedBoardBackend) -> None:
    atx = PikvmAtx(client, on_timeout=2, off_timeout=2, poll_s=0.05)
    assert atx.state() is PowerState.OFF
    with pytest.raises(PowerError, match="board is off"):
        atx.reset()
    atx.on()
    assert atx.state() is PowerState.ON and sim_board.boots == 1
    atx.on()  # idempotent
    assert sim_board.boots == 1
    atx.reset()
    assert sim_board.resets == 1 and atx.state() is PowerState.ON
    atx.off()
    assert atx.state() is PowerState.OFF
    sim_board.atx_enabled = False
    assert atx.state() is PowerState.UNKNOWN


def test_pikvm_atx_off_falls_back_to_hard_off(client: PiKvmClient, kvmd: KvmdServer,
                                              sim_board: SimulatedBoardBackend) -> None:
    sim_board.soft_off_works = False  # a hung OS ignores the short press
    atx = PikvmAtx(client, off_timeout=0.4, hard_off_timeout=2, poll_s=0.05)
    atx.on()
    t0 = time.monotonic()
    atx.off()
    assert time.monotonic() - t0 >= 0.4
    assert atx.state() is PowerState.OFF
    assert kvmd.count("POST", "/api/atx/power") == 3  # on, off, off_hard


def test_pikvm_atx_on_fails_without_mains(client: PiKvmClient) -> None:
    client.gpio_switch("relay", True)  # the sim's relay: True cuts mains
    atx = PikvmAtx(client, on_timeout=0.3, poll_s=0.05)
    with pytest.raises(PowerError, match="stayed off") as exc:
        atx.on()
    assert exc.value.hint and "mains" in exc.value.hint


# ----------------------------------------------------------------------------- board power


def test_board_power_is_a_power_control(board: BoardPower) -> None:
    assert isinstance(board, PowerControl)


def test_cut_holds_then_restores(board: BoardPower, sim_board: SimulatedBoardBackend) -> None:
    board.on()
    assert board.state() is PowerState.ON
    seen: list[PowerState] = []
    observer = BoardPower(board.atx, board.mains, show_progress=False)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(observer.state())
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    t0 = time.monotonic()
    board.cut(hold_s=0.5)
    elapsed = time.monotonic() - t0
    stop.set()
    t.join()
    assert elapsed >= 0.5  # held at least hold_s (no upper bound: a loaded host is slow)
    assert PowerState.CUT in seen
    # The board lost power and stays off after mains returns (BIOS: stay off).
    assert board.state() is PowerState.OFF and sim_board.mains


def test_stay_cut_and_transitions(board: BoardPower, sim_board: SimulatedBoardBackend) -> None:
    board.on()
    board.cut(stay_cut=True)
    assert board.state() is PowerState.CUT and not sim_board.mains
    assert not sim_board.power_led
    with pytest.raises(PowerError, match="mains power is cut") as exc:
        board.on()
    assert exc.value.hint and "restore" in exc.value.hint
    with pytest.raises(PowerError, match="mains power is cut"):
        board.reset()
    board.restore()
    assert board.state() is PowerState.OFF
    board.on()
    assert board.state() is PowerState.ON and sim_board.boots == 2
    board.off()
    assert board.state() is PowerState.OFF


def test_restore_with_power_on_after_ac_loss(tmp_path: Path) -> None:
    sim = SimulatedBoardBackend(tmp_path, press_s=0.02, power_on_after_restore=True,
                                power_led=True)
    with KvmdServer(sim, user=USER, password=PASSWORD) as srv:
        c = PiKvmClient(srv.url, USER, PASSWORD)
        power = BoardPower(PikvmAtx(c), PikvmGpioRelay(c, "relay"), show_progress=False)
        power.cut(hold_s=0.1)
        assert power.state() is PowerState.ON and sim.boots == 2


def test_cycle_cuts_holds_and_boots(board: BoardPower, sim_board: SimulatedBoardBackend) -> None:
    board.on()
    t0 = time.monotonic()
    board.cycle(hold_s=0.3)
    assert time.monotonic() - t0 >= 0.3
    assert board.state() is PowerState.ON and sim_board.boots == 2


def test_cut_shows_progress(client: PiKvmClient, capsys: pytest.CaptureFixture[str]) -> None:
    power = BoardPower(None, PikvmGpioRelay(client, "relay"), name="sim")
    power.cut(hold_s=0.3)
    err = capsys.readouterr().err
    assert "[sim power]" in err and "mains cut, holding 0.3 s" in err
    assert "mains restored after" in err
    assert not PikvmGpioRelay(client, "relay").is_cut()  # printed after it happened


def test_missing_parts_are_config_errors(client: PiKvmClient) -> None:
    only_atx = BoardPower(PikvmAtx(client), None, show_progress=False)
    with pytest.raises(ConfigError, match="no way to cut mains"):
        only_atx.cut(hold_s=0)
    only_mains = BoardPower(None, PikvmGpioRelay(client, "relay"), show_progress=False)
    with pytest.raises(ConfigError, match="no ATX power control"):
        only_mains.on()
    assert only_mains.state() is PowerState.UNKNOWN
    with pytest.raises(ConfigError, match="negative"):
        only_mains.cut(hold_s=-1)
    with pytest.raises(ConfigError, match="no GPIO channel 'mains'") as exc:
        PikvmGpioRelay(client, "mains").is_cut()
    assert exc.value.hint and "relay" in exc.value.hint


def test_gpio_relay_polarity(client: PiKvmClient, sim_board: SimulatedBoardBackend) -> None:
    led = PikvmGpioRelay(client, "led", cut_state=False)  # active-low wiring
    led.cut()
    assert led.is_cut() and not client.gpio_state().channels["led"].state
    led.restore()
    assert not led.is_cut() and client.gpio_state().channels["led"].state
    assert sim_board.mains  # "led" is not the mains channel


# ----------------------------------------------------------------------------- smart plug


def test_plug_on_off_state(plug_server: TasmotaFake) -> None:
    plug = TasmotaPlug(plug_server.url, user="admin", password=PLUG_PASSWORD)
    assert plug.is_on()
    plug.off()
    assert not plug.is_on() and not plug_server.on
    plug.on()
    assert plug.is_on() and plug_server.on
    assert [c for _, c in plug_server.commands] == [
        "Power", "Power Off", "Power", "Power On", "Power",
    ]
    assert PLUG_PASSWORD not in repr(plug)


def test_plug_wrong_password_does_not_leak(plug_server: TasmotaFake) -> None:
    wrong = "wrong-" + PLUG_PASSWORD
    plug = TasmotaPlug(plug_server.url, user="admin", password=wrong)
    with pytest.raises(PlugError, match="refused the command") as exc:
        plug.off()
    assert wrong not in str(exc.value) and "password" in (exc.value.hint or "")
    assert plug_server.on  # nothing was switched


def test_plug_unreachable_names_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    plug = TasmotaPlug(url, user="admin", password=PLUG_PASSWORD, retries=1, backoff=0.05)
    with pytest.raises(PlugError, match="cannot reach the smart plug") as exc:
        plug.is_on()
    assert url in str(exc.value) and PLUG_PASSWORD not in str(exc.value)


def test_plug_rejects_non_tasmota_answers(plug_server: TasmotaFake) -> None:
    plug = TasmotaPlug(plug_server.url.replace("http://", ""), user="admin",
                       password=PLUG_PASSWORD, relay=2)
    with pytest.raises(PlugError, match="without a POWER2 state"):
        plug.is_on()  # the fake is a single-relay device
    with pytest.raises(PlugError, match="bad smart plug URL"):
        TasmotaPlug("ftp://plug")


def test_board_power_with_plug_holds_the_cut(plug_server: TasmotaFake) -> None:
    plug = TasmotaPlug(plug_server.url, user="admin", password=PLUG_PASSWORD)
    power = BoardPower(None, PlugMains(plug), hold_s=0.3, show_progress=False)
    assert power.state() is PowerState.UNKNOWN  # mains on, no LED to read
    power.cut(stay_cut=True)
    assert power.state() is PowerState.CUT
    power.restore()
    plug_server.commands.clear()
    power.cut()  # default hold time
    switched = [(t, c) for t, c in plug_server.commands if c != "Power"]
    assert [c for _, c in switched] == ["Power Off", "Power On"]
    assert switched[1][0] - switched[0][0] >= 0.3
    assert plug_server.on


# ----------------------------------------------------------------------------- relay polarity


def _reverse_wired(tmp_path: Path, **kw: object) -> SimulatedBoardBackend:
    """A relay wired the other way: the channel must be on (true) for the board to have
    mains, so mains are cut at false."""
    return SimulatedBoardBackend(tmp_path, press_s=0.02, mains_cut_state=False, **kw)


def test_reverse_wired_relay_with_cut_state_false(tmp_path: Path) -> None:
    sim = _reverse_wired(tmp_path, power_led=True)
    with KvmdServer(sim, user=USER, password=PASSWORD) as srv:
        c = PiKvmClient(srv.url, USER, PASSWORD)
        power = BoardPower(PikvmAtx(c, poll_s=0.05), PikvmGpioRelay(c, "relay", cut_state=False),
                           show_progress=False, name="sim")
        assert c.gpio_state().channels["relay"].state  # on = mains present
        assert power.state() is PowerState.ON  # not "cut" while the board runs
        power.cut(stay_cut=True)
        assert not sim.mains and power.state() is PowerState.CUT
        power.restore()
        assert sim.mains and power.state() is PowerState.OFF  # mains back on
        power.on()
        power.cut(hold_s=0.1)  # cut + restore leaves mains on
        assert sim.mains and sim.gpio_pin("relay")


def test_default_polarity_misreads_a_reverse_wired_relay(tmp_path: Path) -> None:
    """What the inventory key fixes: with the default cut_state (true), a reverse-wired
    relay reads as cut while the board runs, and cut + restore leave mains off."""
    sim = _reverse_wired(tmp_path, power_led=True)
    with KvmdServer(sim, user=USER, password=PASSWORD) as srv:
        c = PiKvmClient(srv.url, USER, PASSWORD)
        wrong = BoardPower(PikvmAtx(c), PikvmGpioRelay(c, "relay"), show_progress=False)
        assert wrong.state() is PowerState.CUT and sim.power_led  # "cut" while running
        wrong.cut(hold_s=0.0)  # switches true (no change), then false: mains gone
        assert not sim.mains


def test_relay_state_is_read_when_the_channel_is_not_busy(tmp_path: Path) -> None:
    """kvmd reports a busy channel as false. With cut_state false, reading it during
    someone's switch would say "cut" while the board runs."""
    sim = _reverse_wired(tmp_path, power_led=True, gpio_busy_s=0.5)
    with KvmdServer(sim, user=USER, password=PASSWORD) as srv:
        c = PiKvmClient(srv.url, USER, PASSWORD)
        relay = PikvmGpioRelay(c, "relay", cut_state=False)
        c.gpio_switch("relay", True, wait=False)  # another client: busy for 0.5 s
        assert c.gpio_state().channels["relay"].busy
        assert not relay.is_cut() and sim.mains


def test_power_cut_cut_state_reaches_the_relay(tmp_path: Path) -> None:
    import yaml

    from hil.core import parts
    from hil.core.inventory import parse

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "inventory.yaml").read_text())
    raw["boards"]["msi-z690"]["power_cut"]["cut_state"] = False
    board = parse(yaml.safe_dump(raw), tmp_path / "inv.yaml").board("msi-z690")
    mains = parts.make_mains(board, PiKvmClient("http://127.0.0.1:9", USER, PASSWORD))
    assert isinstance(mains, PikvmGpioRelay) and mains.cut_state is False


# ----------------------------------------------------------------------------- ATX busy


def test_power_on_during_a_long_press_waits_for_its_outcome(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend) -> None:
    """The bug: 'power on' during a long press saw the LED still lit, said "now on", and
    the board went off when the press ended. Now it waits, sees off, and boots it."""
    sim_board.long_press_s = 0.8
    atx = PikvmAtx(client, on_timeout=3, poll_s=0.05)
    atx.on()
    other = PiKvmClient(kvmd.url, USER, PASSWORD)
    other.atx_click("power_long", wait=False)  # someone holds the button
    assert client.atx_state().busy and client.atx_state().power_led
    atx.on()
    st = client.atx_state()
    assert st.power_led and not st.busy and sim_board.boots == 2


def test_state_and_reset_wait_for_a_press_in_progress(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend) -> None:
    sim_board.long_press_s = 0.6
    atx = PikvmAtx(client, poll_s=0.05)
    atx.on()
    client.atx_click("power_long", wait=False)
    assert atx.state() is PowerState.OFF  # the outcome, not the LED during the press
    atx.on()
    client.atx_click("power_long", wait=False)
    with pytest.raises(PowerError, match="board is off"):
        atx.reset()  # decided after the press: the board is off now
    assert sim_board.resets == 0


def test_atx_busy_beyond_the_deadline_is_a_clear_error(
        client: PiKvmClient, sim_board: SimulatedBoardBackend) -> None:
    sim_board.long_press_s = 3.0
    atx = PikvmAtx(client, busy_timeout=0.3, poll_s=0.05)
    client.atx_click("power_long", wait=False)
    with pytest.raises(PowerError, match="still in progress") as exc:
        atx.on()
    assert exc.value.hint and "another run" in exc.value.hint
    assert atx.state() is PowerState.UNKNOWN  # never a guess


def test_power_on_with_a_dropped_press_is_not_pressed_twice(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend) -> None:
    atx = PikvmAtx(client, on_timeout=2, poll_s=0.05)
    kvmd.drop_connection("POST", "/api/atx/power", after_op=True)
    atx.on()
    assert sim_board.power_led and sim_board.boots == 1
    assert kvmd.count("POST", "/api/atx/power") == 1
    kvmd.drop_connection("POST", "/api/atx/power", after_op=False)
    with pytest.raises(PowerError, match="broke while pressing reset"):
        atx.reset()
    assert sim_board.resets == 0 and kvmd.count("POST", "/api/atx/power") == 2


# ----------------------------------------------------------------------------- messages


def test_failed_restore_says_mains_are_left_cut(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend,
        capsys: pytest.CaptureFixture[str]) -> None:
    power = BoardPower(PikvmAtx(client), PikvmGpioRelay(client, "relay"), name="sim")
    # both the restore and its one safe re-send are lost
    kvmd.drop_connection("POST", "/api/gpio/switch", after_op=False, times=1)
    power.cut(stay_cut=True)
    kvmd.drop_connection("POST", "/api/gpio/switch", after_op=False, times=2)
    with pytest.raises(PowerError, match="mains are left CUT") as exc:
        power.restore()
    assert "hil power restore --board sim" in (exc.value.hint or "")
    assert "'relay' to false" in (exc.value.hint or "")
    assert not sim_board.mains

    power.restore()
    capsys.readouterr()
    # the cut goes through; the restore after the hold, and its re-send, are lost
    timer = threading.Timer(0.2, lambda: kvmd.drop_connection(
        "POST", "/api/gpio/switch", after_op=False, times=2))
    timer.start()
    with pytest.raises(PowerError, match="mains are left CUT"):
        power.cut(hold_s=0.6)
    timer.join()
    err = capsys.readouterr().err
    assert "restoring mains FAILED: mains are left cut" in err
    assert "mains restored" not in err
    assert not sim_board.mains
