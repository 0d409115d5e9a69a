"""hil.pikvm (the kvmd client) against the real loopback kvmd server, over real HTTP(S)."""

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

from hil.errors import HilError
from hil.pikvm import (
    InsecureTlsWarning,
    PiKvmAuthMissingError,
    PiKvmAuthRejectedError,
    PiKvmBadRequestError,
    PiKvmBusyError,
    PiKvmClient,
    PiKvmConnectionError,
    PiKvmError,
    PiKvmProtocolError,
    PiKvmTimeoutError,
    PiKvmTlsError,
    PiKvmUnavailableError,
    totp,
)
from hil.pikvm_server import KvmdBackend, KvmdServer, SimulatedBoardBackend
from hil.timeout import wait_for

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
    with pytest.raises(HilError, match="base32"):
        totp("not base32 at all!1")
    with pytest.raises(HilError, match="base32"):
        PiKvmClient("https://pikvm", USER, PASSWORD, totp_secret="0189!")


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
    c = PiKvmClient(kvmd.url, USER, PASSWORD, retries=6, backoff=0.1)
    c.atx_click("power", wait=False)  # keeps ATX busy for 0.6 s, then the board is on
    assert c.atx_state().busy
    t0 = time.monotonic()
    c.atx_power("off", wait=True)  # 409 until the press ends, then a 0.6 s press
    assert time.monotonic() - t0 >= 0.6
    statuses = [r.status for r in kvmd.requests if r.path == "/api/atx/power"]
    assert statuses[0] == 409 and statuses[-1] == 200 and len(statuses) >= 2
    st = c.atx_state()
    assert not st.power_led and not st.busy and sim_board.boots == 1


def test_busy_retries_are_bounded(sim_board: SimulatedBoardBackend, kvmd: KvmdServer) -> None:
    sim_board.press_s = 3.0
    c = PiKvmClient(kvmd.url, USER, PASSWORD, retries=2, backoff=0.05)
    c.atx_click("reset", wait=False)
    with pytest.raises(PiKvmBusyError) as exc:
        c.atx_click("power", wait=True)
    assert exc.value.status == 409 and exc.value.kvmd_error == "AtxIsBusyError"
    assert "after 3 attempts" in str(exc.value)
    assert kvmd.count("POST", "/api/atx/click") == 4  # the reset + 3 tries
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


def test_read_timeout_is_reported(sim_board: SimulatedBoardBackend, kvmd: KvmdServer) -> None:
    sim_board.press_s = 2.0
    c = PiKvmClient(kvmd.url, USER, PASSWORD, timeout=0.4, op_timeout=0.4, retries=0)
    t0 = time.monotonic()
    with pytest.raises(PiKvmTimeoutError, match="did not answer"):
        c.atx_click("power", wait=True)
    assert time.monotonic() - t0 < 1.9


# ----------------------------------------------------------------------------- TLS


def test_tls_verification(sim_board: SimulatedBoardBackend,
                          self_signed_cert: tuple[Path, Path]) -> None:
    cert, key = self_signed_cert
    with KvmdServer(sim_board, user=USER, password=PASSWORD, certfile=cert, keyfile=key) as srv:
        assert srv.url.startswith("https://")
        t0 = time.monotonic()
        with pytest.raises(PiKvmTlsError) as exc:
            PiKvmClient(srv.url, USER, PASSWORD, retries=3, backoff=1.0).atx_state()
        assert time.monotonic() - t0 < 1.0  # a certificate problem is not retried
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


def test_gpio_switch_and_pulse(client: PiKvmClient) -> None:
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
    assert ch.state and ch.busy
    impatient = PiKvmClient(client.url, USER, PASSWORD, retries=0)
    with pytest.raises(PiKvmBusyError, match="GpioChannelIsBusyError"):
        impatient.gpio_switch("led", True)
    wait_for(lambda: not client.gpio_state().channels["led"].busy, 5, "the pulse to end")
    assert not client.gpio_state().channels["led"].state


def test_standalone_server_process(tmp_path: Path) -> None:
    env = dict(os.environ, KVMD_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil.pikvm_server", "--msd-dir", str(tmp_path)],
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
