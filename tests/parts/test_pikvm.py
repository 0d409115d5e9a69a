"""hil.drivers.pikvm (the kvmd client) against the real loopback kvmd server, over real HTTP(S)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pikvm_fixtures
import pytest
import requests
from pikvm_fixtures import PASSWORD, USER, free_port
from PIL import Image

from hil.core.errors import ConfigError, HilError
from hil.core.timeout import wait_for
from hil.drivers.pikvm import (
    InsecureTlsWarning,
    PiKvmAuthMissingError,
    PiKvmAuthRejectedError,
    PiKvmBadRequestError,
    PiKvmBusyError,
    PiKvmClient,
    PiKvmConnectionError,
    PiKvmDeliveryUnknownError,
    PiKvmError,
    PiKvmProtocolError,
    PiKvmTimeoutError,
    PiKvmTlsError,
    PiKvmUnavailableError,
    totp,
)
from hil.emulated.kvmd.server import KvmdBackend, KvmdServer
from hil.emulated.kvmd.simulated import SimulatedBoardBackend

sim_board = pikvm_fixtures.sim_board
kvmd = pikvm_fixtures.kvmd
client = pikvm_fixtures.client
self_signed_cert = pikvm_fixtures.self_signed_cert

TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _no_secret(*texts: object) -> None:
    for text in texts:
        assert PASSWORD not in str(text)


# ----------------------------------------------------------------------------- TOTP


def test_totp_matches_rfc6238_sha1_vectors() -> None:
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert totp(secret, 59, digits=8) == "94287082"
    assert totp(secret, 1111111109, digits=8) == "07081804"
    assert totp(secret, 1234567890, digits=8) == "89005924"
    assert totp(secret, 59) == "287082"
    assert totp(secret.lower(), 59) == "287082"  # case and padding do not matter


def test_totp_rejects_invalid_secret() -> None:
    with pytest.raises(ConfigError, match="base32") as exc:
        totp("not base32 at all!1")
    assert exc.value.exit_code == 2  # a configuration error, not a runtime failure
    with pytest.raises(ConfigError, match="base32"):
        PiKvmClient("https://pikvm", USER, PASSWORD, totp_secret="0189!")
    with pytest.raises(ConfigError, match="base32"):
        totp(" \n")  # nothing left: no key


def test_totp_tolerates_whitespace_and_a_trailing_newline() -> None:
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    want = totp(secret, 59)
    assert totp(secret + "\n", 59) == want  # as read from a file or $(cat file)
    assert totp("GEZD GNBV GY3T QOJQ\tGEZD-GNBV-GY3T-QOJQ\r\n", 59) == want
    assert totp(secret + "====", 59) == want  # explicit padding
    PiKvmClient("https://pikvm", USER, PASSWORD, totp_secret=secret + "\n")


# ----------------------------------------------------------------------------- auth


def test_simulated_board_is_a_kvmd_backend(sim_board: SimulatedBoardBackend) -> None:
    assert isinstance(sim_board, KvmdBackend)
    assert not isinstance(object(), KvmdBackend)


def test_auth_headers_accepted(client: PiKvmClient, kvmd: KvmdServer) -> None:
    client.check_auth()
    state = client.atx_state()
    assert state.enabled and not state.busy and not state.power_led
    assert kvmd.requests[-1].status == 200
    _no_secret(repr(client))
    assert "admin" in repr(client)


def test_missing_credentials_maps_to_auth_missing(kvmd: KvmdServer) -> None:
    raw = requests.get(f"{kvmd.url}/api/atx", timeout=5)
    assert raw.status_code == 401
    assert raw.json() == {
        "ok": False,
        "result": {"error": "UnauthorizedError", "error_msg": "no credentials given"},
    }
    anon = PiKvmClient(kvmd.url, "", "", retries=0)
    with pytest.raises(PiKvmAuthMissingError) as exc:
        anon.atx_state()
    assert exc.value.status == 401
    assert exc.value.kvmd_error == "UnauthorizedError"
    assert exc.value.url == f"{kvmd.url}/api/atx"
    assert exc.value.hint and "password" in exc.value.hint


def test_wrong_password_maps_to_auth_rejected_without_leaking(kvmd: KvmdServer) -> None:
    wrong = PASSWORD + "-wrong"
    bad = PiKvmClient(kvmd.url, USER, wrong, retries=0)
    with pytest.raises(PiKvmAuthRejectedError) as exc:
        bad.atx_power("on")
    assert exc.value.status == 403 and exc.value.kvmd_error == "ForbiddenError"
    assert str(exc.value).startswith(f"PiKVM POST {kvmd.url}/api/atx/power failed with HTTP 403")
    for text in (str(exc.value), exc.value.hint, repr(exc.value), repr(bad)):
        assert wrong not in str(text)
    assert isinstance(exc.value, HilError)
    wrong_user = PiKvmClient(kvmd.url, "root", PASSWORD, retries=0)
    with pytest.raises(PiKvmAuthRejectedError):
        wrong_user.check_auth()


def test_basic_auth_and_login_cookie(kvmd: KvmdServer) -> None:
    assert requests.get(f"{kvmd.url}/api/atx", auth=(USER, PASSWORD), timeout=5).ok
    assert requests.get(f"{kvmd.url}/api/atx", auth=(USER, "nope"), timeout=5).status_code == 403
    s = requests.Session()
    bad = s.post(f"{kvmd.url}/api/auth/login", data={"user": USER, "passwd": "x"}, timeout=5)
    assert bad.status_code == 403
    login = s.post(f"{kvmd.url}/api/auth/login", data={"user": USER, "passwd": PASSWORD}, timeout=5)
    assert login.status_code == 200 and "auth_token" in s.cookies
    body = s.get(f"{kvmd.url}/api/atx", timeout=5).json()
    assert body["ok"] is True and body["result"]["leds"] == {"power": False, "hdd": False}
    forged = requests.get(f"{kvmd.url}/api/atx", cookies={"auth_token": "forged"}, timeout=5)
    assert forged.status_code == 403


def test_totp_appended_and_checked(sim_board: SimulatedBoardBackend) -> None:
    with KvmdServer(sim_board, user=USER, password=PASSWORD, totp_secret=TOTP_SECRET) as srv:
        good = PiKvmClient(srv.url, USER, PASSWORD, totp_secret=TOTP_SECRET, retries=0)
        good.check_auth()
        assert good.atx_state().enabled
        # The raw headers carry password + current code.
        code = totp(TOTP_SECRET)
        hdrs = {"X-KVMD-User": USER, "X-KVMD-Passwd": PASSWORD + code}
        assert requests.get(f"{srv.url}/api/atx", headers=hdrs, timeout=5).ok
        with pytest.raises(PiKvmAuthRejectedError):
            PiKvmClient(srv.url, USER, PASSWORD, retries=0).check_auth()  # no code
        other = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ======"
        with pytest.raises(PiKvmAuthRejectedError):
            PiKvmClient(srv.url, USER, PASSWORD, totp_secret=other, retries=0).check_auth()
        stale = PASSWORD + totp(TOTP_SECRET, time.time() - 300)
        hdrs = {"X-KVMD-User": USER, "X-KVMD-Passwd": stale}
        assert requests.get(f"{srv.url}/api/atx", headers=hdrs, timeout=5).status_code == 403


# ----------------------------------------------------------------------------- envelope


class _Fixed(BaseHTTPRequestHandler):
    """Answers every request with the class-level status/body (a non-kvmd server)."""

    status = 200
    body = b""
    ctype = "application/json"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.ctype)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fixed_server() -> Iterator[tuple[str, type[_Fixed]]]:
    handler = type("H", (_Fixed,), {})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    srv.shutdown()
    srv.server_close()


def test_envelope_is_parsed_and_checked(fixed_server: tuple[str, type[_Fixed]]) -> None:
    url, handler = fixed_server
    c = PiKvmClient(url, USER, PASSWORD, retries=0)
    leds = {"power": True, "hdd": True}
    result = {"enabled": True, "busy": True, "leds": leds}
    handler.body = json.dumps({"ok": True, "result": result}).encode()
    st = c.atx_state()
    assert (st.enabled, st.busy, st.power_led, st.hdd_led) == (True, True, True, True)

    handler.body = json.dumps({"ok": False, "result": {"error": "Boom", "error_msg": "b"}}).encode()
    with pytest.raises(PiKvmError, match="Boom: b") as exc:
        c.atx_state()
    assert exc.value.kvmd_error == "Boom"

    handler.body = b'{"power": "on"}'
    with pytest.raises(PiKvmProtocolError, match="envelope"):
        c.atx_state()

    handler.body, handler.ctype = b"<html>nginx</html>", "text/html"
    with pytest.raises(PiKvmProtocolError, match="did not answer JSON"):
        c.atx_state()
    with pytest.raises(PiKvmProtocolError, match="not a JPEG"):
        c.snapshot_bytes()

    handler.status, handler.ctype = 502, "text/html"
    with pytest.raises(PiKvmError, match="HTTP 502") as exc:
        c.atx_state()
    assert type(exc.value) is PiKvmError and exc.value.status == 502


# ----------------------------------------------------------------------------- busy / errors


def test_busy_is_retried_until_free(sim_board: SimulatedBoardBackend, kvmd: KvmdServer) -> None:
    sim_board.press_s = 0.6
    c = PiKvmClient(kvmd.url, USER, PASSWORD, retries=0, backoff=0.1)
    c.atx_click("power", wait=False)  # keeps the power button busy 0.6 s; the board boots
    assert c.atx_state().busy
    t0 = time.monotonic()
    c.atx_click("power_long", wait=True)  # 409 until the press ends, then a long press
    assert time.monotonic() - t0 >= 0.6
    statuses = [r.status for r in kvmd.requests if r.path == "/api/atx/click"]
    assert statuses[0] == 200 and statuses[1] == 409 and statuses[-1] == 200
    st = c.atx_state()
    assert not st.power_led and not st.busy and sim_board.boots == 1


def test_busy_window_outlasts_kvmds_long_press(tmp_path: Path) -> None:
    """kvmd holds a long press 5.5 s and keeps the button busy 1 s after release; the
    client's default 409 window (once 3.5 s) must outlast that, at kvmd's real timing."""
    sim = SimulatedBoardBackend(tmp_path, press_s=0.1, long_press_s=5.5, settle_s=1.0,
                                power_led=True)
    with KvmdServer(sim, user=USER, password=PASSWORD) as srv:
        c = PiKvmClient(srv.url, USER, PASSWORD)  # defaults
        c.atx_click("power_long", wait=False)
        t0 = time.monotonic()
        c.atx_click("power", wait=True)  # refused (409) until the long press is over
        assert time.monotonic() - t0 >= 6.0
        assert sim.power_led and sim.boots == 2  # forced off, then booted by our press
        assert srv.count("POST", "/api/atx/click") >= 3


def test_busy_retries_are_bounded(sim_board: SimulatedBoardBackend, kvmd: KvmdServer) -> None:
    sim_board.press_s = 3.0
    c = PiKvmClient(kvmd.url, USER, PASSWORD, retries=0, backoff=0.05, busy_timeout=0.5)
    c.atx_click("power", wait=False)
    t0 = time.monotonic()
    with pytest.raises(PiKvmBusyError) as exc:
        c.atx_click("power", wait=True)
    assert time.monotonic() - t0 >= 0.5
    assert exc.value.status == 409 and exc.value.kvmd_error == "AtxIsBusyError"
    tries = kvmd.count("POST", "/api/atx/click") - 1
    assert tries >= 2 and f"after {tries} attempts" in str(exc.value)
    assert exc.value.hint and "retry" in exc.value.hint


def test_bad_requests_map_to_400(client: PiKvmClient, kvmd: KvmdServer) -> None:
    with pytest.raises(PiKvmBadRequestError) as exc:
        client.msd_set_params("no-such.img")
    assert exc.value.status == 400 and exc.value.kvmd_error == "MsdUnknownImageError"
    with pytest.raises(PiKvmBadRequestError, match="GpioChannelNotFoundError"):
        client.gpio_switch("nope", True)
    raw = requests.post(
        f"{kvmd.url}/api/atx/power", params={"action": "explode"},
        headers={"X-KVMD-User": USER, "X-KVMD-Passwd": PASSWORD}, timeout=5,
    )
    assert raw.status_code == 400 and raw.json()["result"]["error"] == "ValidatorError"
    with pytest.raises(HilError, match="unknown ATX power action"):
        client.atx_power("explode")  # refused before any request
    assert kvmd.count("POST", "/api/atx/power") == 1


def test_snapshot_unavailable_is_503(client: PiKvmClient, sim_board: SimulatedBoardBackend,
                                     tmp_path: Path) -> None:
    with pytest.raises(PiKvmUnavailableError) as exc:
        client.snapshot(tmp_path / "off.jpg")  # the board is off: no video
    assert exc.value.status == 503 and exc.value.kvmd_error == "UnavailableError"
    assert not (tmp_path / "off.jpg").exists()
    placeholder = client.snapshot_bytes(allow_offline=True)
    assert Image.open(io.BytesIO(placeholder)).format == "JPEG"
    client.atx_power("on")
    sim_board.streamer_available = False
    with pytest.raises(PiKvmUnavailableError):
        client.snapshot_bytes()


def test_connection_refused_names_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    c = PiKvmClient(url, USER, PASSWORD, retries=2, backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(PiKvmConnectionError) as exc:
        c.atx_state()
    assert time.monotonic() - t0 >= 0.15  # 0.05 + 0.1 of backoff
    assert str(exc.value) == (
        f"cannot reach the PiKVM at {url}/api/atx after 3 attempt(s): "
        "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    assert exc.value.url == f"{url}/api/atx"
    assert exc.value.hint and "reachable" in exc.value.hint
    _no_secret(str(exc.value))


class _SlowScreen(SimulatedBoardBackend):
    def snapshot(self) -> bytes:
        time.sleep(2.0)
        return super().snapshot()


def test_read_timeout_is_reported(tmp_path: Path) -> None:
    sim = _SlowScreen(tmp_path, power_led=True)
    with KvmdServer(sim, user=USER, password=PASSWORD) as srv:
        c = PiKvmClient(srv.url, USER, PASSWORD, timeout=0.4, op_timeout=0.4, retries=3)
        with pytest.raises(PiKvmTimeoutError, match=r"did not answer GET .* within") as exc:
            c.snapshot_bytes()
        assert "not resent" not in str(exc.value)
        assert srv.connections == 1  # reported, not retried


def test_press_whose_answer_times_out_is_not_repeated(sim_board: SimulatedBoardBackend,
                                                      kvmd: KvmdServer) -> None:
    """No answer within the timeout: kvmd may be pressing. The client reads the state
    back (a press in progress), waits for it, and never presses a second time."""
    sim_board.press_s = 1.5
    c = PiKvmClient(kvmd.url, USER, PASSWORD, timeout=0.4, op_timeout=0.4, retries=3)
    c.atx_click("power", wait=True)
    st = c.atx_state()
    assert st.power_led and not st.busy and sim_board.boots == 1
    assert kvmd.count("POST", "/api/atx/click") == 1


# ----------------------------------------------------------------------------- TLS


def test_tls_verification(sim_board: SimulatedBoardBackend,
                          self_signed_cert: tuple[Path, Path]) -> None:
    cert, key = self_signed_cert
    with KvmdServer(sim_board, user=USER, password=PASSWORD, certfile=cert, keyfile=key) as srv:
        assert srv.url.startswith("https://")
        with pytest.raises(PiKvmTlsError) as exc:
            PiKvmClient(srv.url, USER, PASSWORD, retries=3, backoff=1.0).atx_state()
        assert srv.connections == 1  # a certificate problem is not retried
        assert str(exc.value) == (
            f"TLS handshake with the PiKVM at {srv.url}/api/atx failed: "
            "certificate verify failed: self-signed certificate"
        )
        assert exc.value.hint and "CA file" in exc.value.hint
        assert srv.count("GET", "/api/atx") == 0  # refused at the handshake, not retried

        assert PiKvmClient(srv.url, USER, PASSWORD, ca_file=cert).atx_state().enabled

        insecure = PiKvmClient(srv.url, USER, PASSWORD, verify=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            insecure.atx_state()
            insecure.atx_state()
            insecure.gpio_state()
        ours = [w for w in caught if issubclass(w.category, InsecureTlsWarning)]
        assert len(ours) == 1 and srv.url in str(ours[0].message)
        assert len(caught) == 1  # urllib3's per-request warning is suppressed


def test_missing_ca_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(HilError, match="CA file"):
        PiKvmClient("https://pikvm", USER, PASSWORD, ca_file=tmp_path / "missing.crt")
    with pytest.raises(HilError, match="scheme"):
        PiKvmClient("pikvm.lab", USER, PASSWORD)


# ----------------------------------------------------------------------------- features


def test_atx_semantics_follow_the_power_led(client: PiKvmClient,
                                            sim_board: SimulatedBoardBackend) -> None:
    client.atx_power("off")  # already off: nothing pressed
    client.atx_power("reset_hard")
    assert (sim_board.boots, sim_board.resets) == (0, 0)
    client.atx_power("on")
    assert client.atx_state().power_led and sim_board.boots == 1
    client.atx_power("on")  # already on: no second press
    assert sim_board.boots == 1
    client.atx_power("reset_hard")
    assert sim_board.resets == 1 and client.atx_state().power_led
    client.atx_power("off_hard")
    assert not client.atx_state().power_led
    client.atx_click("power")
    assert client.atx_state().power_led
    client.atx_click("power_long")
    assert not client.atx_state().power_led


def test_concurrent_request_sees_busy_during_wait(client: PiKvmClient, kvmd: KvmdServer,
                                                  sim_board: SimulatedBoardBackend) -> None:
    sim_board.long_press_s = 1.5
    client.atx_power("on")
    t = threading.Thread(target=lambda: client.atx_power("off_hard", wait=True))
    t.start()
    other = PiKvmClient(kvmd.url, USER, PASSWORD)
    seen_busy = False
    while t.is_alive() and not seen_busy:  # answered while the first request still waits
        seen_busy = other.atx_state().busy
    t.join(5)
    assert seen_busy
    assert not other.atx_state().busy and not other.atx_state().power_led


def test_snapshot_written_as_jpeg(client: PiKvmClient, sim_board: SimulatedBoardBackend,
                                  tmp_path: Path) -> None:
    client.atx_power("on")
    out = client.snapshot(tmp_path / "shots" / "screen.jpg")
    assert out == tmp_path / "shots" / "screen.jpg"
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.size == (640, 480)
    preview = client.snapshot_bytes(preview_max_width=320)
    with Image.open(io.BytesIO(preview)) as img:
        assert img.size == (320, 240)
    assert not list(out.parent.glob("*.part"))


def test_hid_print_keys_and_shortcut(client: PiKvmClient, sim_board: SimulatedBoardBackend) -> None:
    client.hid_print("root\n")
    client.send_key("Enter")
    client.send_shortcut("ControlLeft", "AltLeft", "Delete")
    assert sim_board.hid_log == [
        ("print", "root\n"), ("key", "Enter"), ("shortcut", "ControlLeft,AltLeft,Delete"),
    ]
    with pytest.raises(HilError, match="at least one key"):
        client.send_shortcut()


def test_msd_upload_with_progress_and_listing(client: PiKvmClient, kvmd: KvmdServer,
                                              sim_board: SimulatedBoardBackend,
                                              tmp_path: Path) -> None:
    src = tmp_path / "live.img"
    data = os.urandom(3 * 1024 * 1024 + 123)
    src.write_bytes(data)
    seen: list[tuple[int, int]] = []
    img = client.msd_upload(src, progress=lambda sent, total: seen.append((sent, total)))
    assert img.name == "live.img" and img.size == len(data)
    assert 3 < len(seen) <= len(data) // (256 * 1024) + 2  # throttled, not per 8 KiB block
    assert seen[-1] == (len(data), len(data))
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    stored = sim_board.msd_dir / "live.img"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()

    st = client.msd_state()
    assert st.images["live.img"].size == len(data) and not st.connected
    assert st.storage_free == st.storage_size - len(data)
    assert st.image is None

    with pytest.raises(PiKvmBadRequestError, match="MsdImageExistsError"):
        client.msd_upload(src)
    src.write_bytes(data[:1000])
    assert client.msd_upload(src, replace=True).size == 1000
    assert stored.read_bytes() == data[:1000]
    client.msd_set_params("live.img", cdrom=False, rw=True)
    client.msd_connect()
    st = client.msd_state()
    assert (st.image, st.cdrom, st.rw, st.connected) == ("live.img", False, True, True)
    with pytest.raises(PiKvmBadRequestError, match="MsdConnectedError"):
        client.msd_remove("live.img")
    with pytest.raises(PiKvmBadRequestError, match="MsdConnectedError"):
        client.msd_set_params(cdrom=True)
    client.msd_disconnect()
    client.msd_remove("live.img")
    assert client.msd_state().images == {} and not stored.exists()
    client.msd_reset()


def test_msd_chunked_upload_and_bad_name(kvmd: KvmdServer, sim_board: SimulatedBoardBackend,
                                         client: PiKvmClient) -> None:
    hdrs = {"X-KVMD-User": USER, "X-KVMD-Passwd": PASSWORD}
    chunks = [b"a" * 1000, b"b" * 70000, b"c"]
    resp = requests.post(f"{kvmd.url}/api/msd/write", params={"image": "chunked.img"},
                         data=iter(chunks), headers=hdrs, timeout=5)
    assert resp.ok, resp.text
    assert resp.json()["result"]["image"] == {"name": "chunked.img", "size": 71001,
                                              "complete": True}
    assert (sim_board.msd_dir / "chunked.img").read_bytes() == b"".join(chunks)
    bad = requests.post(f"{kvmd.url}/api/msd/write", params={"image": "../evil"},
                        data=b"x", headers=hdrs, timeout=5)
    assert bad.status_code == 400 and bad.json()["result"]["error"] == "ValidatorError"
    # the connection stays usable after an early error answer
    assert client.msd_state().images.keys() == {"chunked.img"}


def test_gpio_switch_and_pulse(client: PiKvmClient, sim_board: SimulatedBoardBackend) -> None:
    state = client.gpio_state()
    assert set(state.channels) == {"relay", "led"}
    assert not state.channels["led"].state and state.channels["led"].switch
    client.gpio_switch("led", True)
    assert client.gpio_state().channels["led"].state
    client.gpio_switch("led", False)

    t0 = time.monotonic()
    client.gpio_pulse("led", delay=0.3, wait=True)
    assert time.monotonic() - t0 >= 0.3
    assert not client.gpio_state().channels["led"].state

    client.gpio_pulse("led", delay=2.0, wait=False)
    ch = client.gpio_state().channels["led"]
    assert ch.busy and not ch.state  # kvmd reports a busy channel as false ...
    assert sim_board.gpio_pin("led")  # ... while the pin is set
    impatient = PiKvmClient(client.url, USER, PASSWORD, retries=0, busy_timeout=0.3)
    with pytest.raises(PiKvmBusyError, match="GpioChannelIsBusyError"):
        impatient.gpio_switch("led", True)
    wait_for(lambda: not client.gpio_state().channels["led"].busy, 5, "the pulse to end")
    assert not client.gpio_state().channels["led"].state


def test_standalone_server_process(tmp_path: Path) -> None:
    env = dict(os.environ, KVMD_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil.emulated.kvmd.simulated", "--msd-dir", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("kvmd listening on http://127.0.0.1:"), line
        assert PASSWORD not in line
        url = line.split()[3]
        c = PiKvmClient(url, USER, PASSWORD)
        c.atx_power("on")
        assert c.atx_state().power_led
        with pytest.raises(PiKvmAuthRejectedError):
            PiKvmClient(url, USER, "admin", retries=0).check_auth()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ----------------------------------------------------------------------------- dropped connections


def test_get_with_a_dropped_connection_is_resent(client: PiKvmClient, kvmd: KvmdServer) -> None:
    kvmd.drop_connection("GET", "/api/atx", after_op=False)
    assert client.atx_state().enabled
    assert [r.status for r in kvmd.requests if r.path == "/api/atx"] == [499, 200]


def test_post_is_resent_when_the_connection_never_opened(tmp_path: Path) -> None:
    """Refused: the request provably never left, so even a button press is resent."""
    port = free_port()
    sim = SimulatedBoardBackend(tmp_path, press_s=0.05)
    started: list[KvmdServer] = []
    timer = threading.Timer(0.3, lambda: started.append(
        KvmdServer(sim, user=USER, password=PASSWORD, port=port)))
    timer.start()
    try:
        c = PiKvmClient(f"http://127.0.0.1:{port}", USER, PASSWORD, retries=6, backoff=0.1)
        c.atx_click("power")
        timer.join()
        assert sim.power_led and sim.boots == 1
        assert started[0].count("POST", "/api/atx/click") == 1
    finally:
        timer.join()
        for srv in started:
            srv.stop()


def test_press_dropped_after_kvmd_acted_is_never_replayed(client: PiKvmClient,
                                                          kvmd: KvmdServer,
                                                          sim_board: SimulatedBoardBackend) -> None:
    """The bug: after a drop the client sent button=power again and toggled the board
    back off. Now it is sent once; the state read back cannot prove it arrived (the press
    is over), so the error says so instead of pressing again."""
    kvmd.drop_connection("POST", "/api/atx/click", after_op=True)
    with pytest.raises(PiKvmDeliveryUnknownError, match="may have carried it out") as exc:
        client.atx_click("power")
    assert "power LED on" in str(exc.value) and "not resent" in (exc.value.hint or "")
    assert kvmd.count("POST", "/api/atx/click") == 1
    assert sim_board.power_led and sim_board.boots == 1  # pressed once: the board runs


def test_press_dropped_before_kvmd_saw_it_is_not_resent_either(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend) -> None:
    kvmd.drop_connection("POST", "/api/atx/click", after_op=False)
    with pytest.raises(PiKvmDeliveryUnknownError, match="power LED off"):
        client.atx_click("power_long")  # the client cannot tell this drop from the other
    assert kvmd.count("POST", "/api/atx/click") == 1 and sim_board.boots == 0


def test_dropped_press_still_running_counts_as_delivered(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend) -> None:
    sim_board.press_s = 0.5
    kvmd.drop_connection("POST", "/api/atx/click", after_op=True)
    client.atx_click("power", wait=False)  # kvmd answered nothing, but is pressing
    assert client.atx_state().busy
    client.wait_atx_idle()
    assert sim_board.power_led and kvmd.count("POST", "/api/atx/click") == 1


def test_dropped_power_action_decided_by_the_led(client: PiKvmClient, kvmd: KvmdServer,
                                                 sim_board: SimulatedBoardBackend) -> None:
    kvmd.drop_connection("POST", "/api/atx/power", after_op=True)
    client.atx_power("on")  # the LED shows the intent: done, not repeated
    assert sim_board.power_led and sim_board.boots == 1
    kvmd.drop_connection("POST", "/api/atx/power", after_op=False)
    with pytest.raises(PiKvmDeliveryUnknownError, match="power LED on"):
        client.atx_power("off_hard")  # dropped unseen: LED still on, not repeated
    assert sim_board.power_led
    assert kvmd.count("POST", "/api/atx/power") == 2


def test_dropped_gpio_switch_is_read_back(client: PiKvmClient, kvmd: KvmdServer,
                                          sim_board: SimulatedBoardBackend) -> None:
    kvmd.drop_connection("POST", "/api/gpio/switch", after_op=True)
    client.gpio_switch("led", True)  # done before the drop: read back, not resent
    assert sim_board.gpio_pin("led") and kvmd.count("POST", "/api/gpio/switch") == 1
    kvmd.drop_connection("POST", "/api/gpio/switch", after_op=False)
    client.gpio_switch("led", False)  # not done: setting a value again cannot act twice
    assert not sim_board.gpio_pin("led") and kvmd.count("POST", "/api/gpio/switch") == 3


def test_dropped_pulse_and_keystrokes_are_not_resent(
        client: PiKvmClient, kvmd: KvmdServer, sim_board: SimulatedBoardBackend) -> None:
    kvmd.drop_connection("POST", "/api/gpio/pulse", after_op=False)
    with pytest.raises(PiKvmDeliveryUnknownError, match="not pulsing"):
        client.gpio_pulse("led", delay=0.1)
    kvmd.drop_connection("POST", "/api/hid/print", after_op=True)
    with pytest.raises(PiKvmDeliveryUnknownError):
        client.hid_print("rm -rf /tmp/x\n")
    assert sim_board.hid_log == [("print", "rm -rf /tmp/x\n")]  # typed once, not twice
    assert kvmd.count("POST", "/api/gpio/pulse") == 1


def test_dropped_upload_is_read_back(client: PiKvmClient, kvmd: KvmdServer,
                                     tmp_path: Path) -> None:
    src = tmp_path / "fw.img"
    src.write_bytes(os.urandom(300_000))
    kvmd.drop_connection("POST", "/api/msd/write", after_op=True)
    img = client.msd_upload(src)  # stored whole: it arrived
    assert img.size == 300_000 and kvmd.count("POST", "/api/msd/write") == 1
    kvmd.drop_connection("POST", "/api/msd/write", after_op=False)
    with pytest.raises(PiKvmDeliveryUnknownError, match=r"'other\.img' is not stored"):
        client.msd_upload(src, "other.img")
    assert kvmd.count("POST", "/api/msd/write") == 2


def test_atx_power_with_nothing_to_do_answers_while_busy(
        client: PiKvmClient, sim_board: SimulatedBoardBackend) -> None:
    """kvmd's atx/power looks at the LED first: 'on' during a long press of a running
    board is answered 200 at once (nothing pressed), which is why callers must wait for
    busy to clear before trusting the LED."""
    sim_board.long_press_s = 1.0
    client.atx_power("on")
    client.atx_click("power_long", wait=False)
    client.atx_power("on")  # no 409, nothing pressed
    assert client.atx_state().busy and client.atx_state().power_led
    assert not client.wait_atx_idle().power_led  # the long press ends: the board is off
    with pytest.raises(PiKvmBusyError, match="still reports an ATX press"):
        client.atx_click("power_long", wait=False)
        client.wait_atx_idle(timeout=0.2)


def test_snapshot_503_hint_names_a_real_option(client: PiKvmClient) -> None:
    with pytest.raises(PiKvmUnavailableError) as exc:
        client.snapshot_bytes()
    assert "hil screenshot --allow-offline" in (exc.value.hint or "")
    from hil.cli.main import build_parser

    args = build_parser().parse_args(["screenshot", "--allow-offline"])
    assert args.allow_offline is True
