"""Client for the PiKVM (kvmd) HTTP API: ATX buttons, screenshots, keyboard, virtual USB, GPIO.

The bench drives the board through PiKVM, so every failure here must say *which* PiKVM,
*what* went wrong (kvmd's own error name) and how to fix it, without ever showing the
password. kvmd answers ``{"ok": bool, "result": {...}}``; the status code tells the class
of failure (401 no credentials, 403 bad credentials, 409 busy, 400 bad parameters or a
failed operation, 503 streamer unavailable) and each maps to its own exception class so
callers can react (retry on busy, re-ask the secret on 403...).

What is retried follows from what kvmd did, not from the error alone:

* 409 busy is kvmd refusing the request, so it is resent until ``busy_timeout`` has
  passed (longer than kvmd's long press: 5.5 s held plus 1 s settle).
* A connection that could not be opened (refused, DNS, connect timeout) provably never
  carried the request, so any request is resent up to ``retries`` times.
* A connection that broke, or an answer that never came, after the request was sent
  leaves it unknown whether kvmd acted (kvmd finishes an operation even when its client
  goes away). GETs are resent. A POST is never resent: a replayed ``button=power``
  toggles the board back. The state is read back instead (``GET /api/atx``,
  ``/api/gpio``, ``/api/msd``) and decides: the operation is running or its effect is
  there (success), or `PiKvmDeliveryUnknownError` says plainly that nothing was resent.

Every request has a timeout. TLS is verified by default: PiKVM ships a
self-signed certificate, so pass its CA/certificate file as ``ca_file``; ``verify=False``
is honoured but warns once per client.

The dataclasses below (`AtxState`, `GpioChannel`, `GpioState`, `MsdImage`, `MsdState`)
are the data model of the kvmd subset; `hil.emulated.kvmd.server` serves the same model, so a
backend (simulated or QEMU-backed) speaks in these types.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl
import struct
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3

from hil.core.errors import ConfigError, HilError, TimeoutExpired
from hil.core.timeout import Deadline

ATX_POWER_ACTIONS = ("on", "off", "off_hard", "reset_hard")
ATX_BUTTONS = ("power", "power_long", "reset")

# ----------------------------------------------------------------------------- errors


class PiKvmError(HilError):
    """A PiKVM request failed; carries the URL (never credentials) and kvmd's error name."""

    default_hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        kvmd_error: str | None = None,
        kvmd_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint or self.default_hint)
        self.url = url
        self.status = status
        self.kvmd_error = kvmd_error
        self.kvmd_message = kvmd_message


class PiKvmAuthMissingError(PiKvmError):
    """401: kvmd got no credentials."""

    default_hint = "configure the PiKVM user and password (X-KVMD-User / X-KVMD-Passwd)"


class PiKvmAuthRejectedError(PiKvmError):
    """403: kvmd rejected the user, the password or the TOTP code."""

    default_hint = (
        "check the PiKVM user/password secret; with 2FA also the TOTP secret "
        "and this machine's clock"
    )


class PiKvmBusyError(PiKvmError):
    """409: another operation (ATX press, GPIO pulse, MSD write) is still running."""

    default_hint = "another PiKVM operation is running; wait and retry (or raise retries)"


class PiKvmBadRequestError(PiKvmError):
    """400: bad parameters or a refused/failed operation (e.g. MSD image unknown)."""

    default_hint = "see kvmd's error message; check the names and the device's state"


class PiKvmUnavailableError(PiKvmError):
    """503: the streamer (video capture) is not available, so no snapshot."""

    default_hint = (
        "the PiKVM streamer has no video; is the board powered and the HDMI cable in? "
        "('hil screenshot --allow-offline' saves kvmd's placeholder image instead)"
    )


class PiKvmConnectionError(PiKvmError):
    """The PiKVM could not be reached (refused, reset, DNS, connect timeout)."""

    default_hint = "is the PiKVM powered and reachable from this machine? check the URL"


class PiKvmDeliveryUnknownError(PiKvmConnectionError):
    """A POST may or may not have been carried out (the connection broke after it was
    sent, or no answer came), and the state read back does not tell; it was not resent."""

    default_hint = (
        "not resent, because a repeated button press or keystroke acts twice; check the "
        "board ('hil power status', the PiKVM web UI) before trying again"
    )


class PiKvmTlsError(PiKvmConnectionError):
    """The TLS handshake or certificate check failed (not retried: it will not heal)."""

    default_hint = (
        "PiKVM uses a self-signed certificate: pass its certificate as the CA file "
        "(e.g. copied from /etc/kvmd/nginx/ssl/server.crt), or disable verification explicitly"
    )


class PiKvmProtocolError(PiKvmError):
    """The answer was not kvmd's JSON envelope (wrong URL? a proxy in between?)."""

    default_hint = "check that the URL points at the PiKVM itself (https://<pikvm>)"


class PiKvmTimeoutError(PiKvmError, TimeoutExpired):
    """kvmd accepted the request but did not answer in time."""

    default_hint = "the PiKVM is slow or hung; raise the timeout or check it via the web UI"


_STATUS_ERRORS: dict[int, type[PiKvmError]] = {
    401: PiKvmAuthMissingError,
    403: PiKvmAuthRejectedError,
    409: PiKvmBusyError,
    400: PiKvmBadRequestError,
    503: PiKvmUnavailableError,
}


class InsecureTlsWarning(UserWarning):
    """TLS verification towards a PiKVM was disabled on request."""


# ----------------------------------------------------------------------------- TOTP


def _b32_secret(secret: str) -> bytes:
    """The key of a base32 TOTP secret. Whitespace anywhere (a trailing newline from a
    secret file or ``export``, groups of four) and dashes are ignored; anything else
    that is not base32 is a configuration error (exit 2), never a runtime failure."""
    cleaned = "".join(secret.split()).replace("-", "").upper().rstrip("=")
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        key = base64.b32decode(cleaned)
    except ValueError:
        key = b""
    if not key:
        raise ConfigError(
            "the PiKVM TOTP secret is not valid base32",
            "use the secret shown by 'kvmd-totp show' (letters A-Z and digits 2-7)",
        )
    return key


def totp(secret: str, at: float | None = None, *, digits: int = 6, step: int = 30) -> str:
    """RFC 6238 TOTP (HMAC-SHA1) for a base32 `secret` at Unix time `at` (default: now).

    kvmd's 2FA expects this code appended to the password, so the client computes it per
    request instead of asking the operator.
    """
    key = _b32_secret(secret)
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


# ----------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class AtxState:
    """`GET /api/atx`: whether ATX is wired, an operation runs (``busy``: either button;
    ``acts``: the power and the reset button each, as kvmd says), and the two LEDs."""

    enabled: bool
    busy: bool
    power_led: bool
    hdd_led: bool
    power_busy: bool = False
    reset_busy: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "busy": self.busy,
            "acts": {"power": self.power_busy, "reset": self.reset_busy},
            "leds": {"power": self.power_led, "hdd": self.hdd_led},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AtxState:
        leds = data.get("leds") or {}
        acts = data.get("acts") or {}  # older kvmd versions say only "busy"
        return cls(
            enabled=bool(data.get("enabled", False)),
            busy=bool(data.get("busy", False)),
            power_led=bool(leds.get("power", False)),
            hdd_led=bool(leds.get("hdd", False)),
            power_busy=bool(acts.get("power", False)),
            reset_busy=bool(acts.get("reset", False)),
        )


@dataclass(frozen=True)
class GpioChannel:
    """One kvmd GPIO channel; `output` channels can be switched and/or pulsed."""

    name: str
    state: bool
    output: bool = True
    online: bool = True
    busy: bool = False
    switch: bool = True
    pulse: bool = True
    pulse_delay: float = 0.1


@dataclass(frozen=True)
class GpioState:
    """`GET /api/gpio`, reduced to the channels and their states."""

    channels: dict[str, GpioChannel]

    def to_json(self) -> dict[str, Any]:
        scheme: dict[str, dict[str, Any]] = {"inputs": {}, "outputs": {}}
        state: dict[str, dict[str, Any]] = {"inputs": {}, "outputs": {}}
        for ch in self.channels.values():
            kind = "outputs" if ch.output else "inputs"
            if ch.output:
                scheme[kind][ch.name] = {
                    "switch": ch.switch,
                    "pulse": {"delay": ch.pulse_delay, "min_delay": 0.1, "max_delay": 10.0}
                    if ch.pulse
                    else None,
                }
                state[kind][ch.name] = {"online": ch.online, "state": ch.state, "busy": ch.busy}
            else:
                scheme[kind][ch.name] = {}
                state[kind][ch.name] = {"online": ch.online, "state": ch.state}
        return {"model": {"scheme": scheme}, "state": state}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GpioState:
        scheme = (data.get("model") or {}).get("scheme") or {}
        states = data.get("state") or {}
        channels: dict[str, GpioChannel] = {}
        for kind in ("inputs", "outputs"):
            for name, st in (states.get(kind) or {}).items():
                sch = (scheme.get(kind) or {}).get(name) or {}
                pulse = sch.get("pulse") if kind == "outputs" else None
                channels[name] = GpioChannel(
                    name=name,
                    state=bool(st.get("state", False)),
                    output=kind == "outputs",
                    online=bool(st.get("online", True)),
                    busy=bool(st.get("busy", False)),
                    switch=bool(sch.get("switch", False)) if kind == "outputs" else False,
                    pulse=bool(pulse),
                    pulse_delay=float((pulse or {}).get("delay", 0.1)),
                )
        return cls(channels)


@dataclass(frozen=True)
class MsdImage:
    """An image stored on the PiKVM's virtual USB drive storage."""

    name: str
    size: int
    complete: bool = True


@dataclass(frozen=True)
class MsdState:
    """`GET /api/msd`: stored images, the selected one and whether it is plugged in."""

    enabled: bool
    online: bool
    busy: bool
    image: str | None
    cdrom: bool
    rw: bool
    connected: bool
    images: dict[str, MsdImage] = field(default_factory=dict)
    storage_size: int = 0
    storage_free: int = 0

    def to_json(self) -> dict[str, Any]:
        sel = self.images.get(self.image) if self.image else None
        return {
            "enabled": self.enabled,
            "online": self.online,
            "busy": self.busy,
            "drive": {
                "image": {"name": sel.name, "size": sel.size, "complete": sel.complete}
                if sel
                else None,
                "cdrom": self.cdrom,
                "rw": self.rw,
                "connected": self.connected,
            },
            "storage": {
                "size": self.storage_size,
                "free": self.storage_free,
                "images": {
                    i.name: {"size": i.size, "complete": i.complete} for i in self.images.values()
                },
                "uploading": None,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MsdState:
        drive = data.get("drive") or {}
        storage = data.get("storage") or {}
        # kvmd renamed storage.images to storage.files in later versions: accept both.
        raw_images = storage.get("images") or storage.get("files") or {}
        images = {
            name: MsdImage(name, int(info.get("size", 0)), bool(info.get("complete", True)))
            for name, info in raw_images.items()
        }
        sel = drive.get("image")
        return cls(
            enabled=bool(data.get("enabled", False)),
            online=bool(data.get("online", False)),
            busy=bool(data.get("busy", False)),
            image=sel.get("name") if isinstance(sel, Mapping) else None,
            cdrom=bool(drive.get("cdrom", False)),
            rw=bool(drive.get("rw", False)),
            connected=bool(drive.get("connected", False)),
            images=images,
            storage_size=int(storage.get("size", 0)),
            storage_free=int(storage.get("free", 0)),
        )


# ----------------------------------------------------------------------------- upload body

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(sent_bytes, total_bytes)`` while an image uploads."""


class _ProgressReader:
    """A file wrapper with a length (so requests sends Content-Length) that reports progress."""

    REPORT_EVERY = 256 * 1024  # http.client reads 8-16 KiB blocks: don't report each one

    def __init__(self, fh: BinaryIO, total: int, progress: ProgressCallback | None) -> None:
        self._fh = fh
        self._total = total
        self._sent = 0
        self._reported = 0
        self._progress = progress

    def __len__(self) -> int:
        return self._total

    def read(self, size: int = -1) -> bytes:
        chunk = self._fh.read(size)
        self._sent += len(chunk)
        due = self._sent - self._reported >= self.REPORT_EVERY or self._sent == self._total
        if self._progress is not None and chunk and due:
            self._reported = self._sent
            self._progress(self._sent, self._total)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(64 * 1024):
            yield chunk


# ----------------------------------------------------------------------------- client


def _flag(value: bool) -> str:
    return "1" if value else "0"


class PiKvmClient:
    """One PiKVM, addressed by its base URL (``https://pikvm.lab``; a trailing ``/api`` is ok).

    Parameters:
        url: base URL of the PiKVM (scheme and host[:port]).
        user, password: kvmd credentials, sent as ``X-KVMD-User``/``X-KVMD-Passwd`` headers
            (both empty: none are sent).
        totp_secret: base32 2FA secret; when set the current TOTP code is appended to the
            password of every request (kvmd's 2FA scheme).
        verify: verify the TLS certificate (default). False disables it and warns once.
        ca_file: CA bundle or the PiKVM's own self-signed certificate to verify against.
        timeout: seconds for connecting and for an answer to an ordinary request.
        op_timeout: seconds to wait for an answer when kvmd is told ``wait=1`` (a long ATX
            press takes ~6 s) or while uploading an image.
        retries: how many times a connection that could not be opened is retried (and a
            GET whose connection broke).
        backoff: first retry delay in seconds; doubles per retry, capped at 5 s.
        busy_timeout: how long 409 busy is retried and `wait_atx_idle` waits, in seconds;
            longer than kvmd's long press (5.5 s held, then 1 s settle).
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        totp_secret: str | None = None,
        verify: bool = True,
        ca_file: str | Path | None = None,
        timeout: float = 10.0,
        op_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        busy_timeout: float = 15.0,
    ) -> None:
        base = url.rstrip("/")
        if base.endswith("/api"):
            base = base[: -len("/api")]
        if not base.startswith(("http://", "https://")):
            raise HilError(
                f"PiKVM URL {url!r} has no http:// or https:// scheme",
                "write it as https://<pikvm-host>",
            )
        if totp_secret:
            _b32_secret(totp_secret)  # fail early, not on the first request
        self.url = base
        self.user = user
        self._password = password
        self._totp_secret = totp_secret
        self.verify = verify
        self.ca_file = Path(ca_file) if ca_file else None
        if self.ca_file is not None and not self.ca_file.is_file():
            raise HilError(
                f"PiKVM CA file {self.ca_file} does not exist",
                "copy the PiKVM certificate to this machine or fix the path",
            )
        self.timeout = timeout
        self.op_timeout = op_timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.busy_timeout = busy_timeout
        self._warned_insecure = False
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"PiKvmClient(url={self.url!r}, user={self.user!r}, verify={self._verify_arg()!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PiKvmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    def _verify_arg(self) -> bool | str:
        if not self.verify:
            return False
        return str(self.ca_file) if self.ca_file else True

    def _headers(self) -> dict[str, str]:
        if not self.user and not self._password:
            return {}  # no credentials configured (kvmd with auth disabled)
        passwd = self._password
        if self._totp_secret:
            passwd += totp(self._totp_secret)
        return {"X-KVMD-User": self.user, "X-KVMD-Passwd": passwd}

    def _api_url(self, path: str) -> str:
        return f"{self.url}/api{path}"

    def _warn_insecure_once(self) -> None:
        if not self.verify and not self._warned_insecure:
            self._warned_insecure = True
            warnings.warn(
                f"TLS certificate verification is disabled for the PiKVM at {self.url}",
                InsecureTlsWarning,
                stacklevel=4,
            )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """Send one request; return a 2xx response or raise a `PiKvmError`.

        Resent only when that cannot act twice (see the module docstring): on 409 until
        `busy_timeout`, on a connection that never opened up to `retries` times, and a GET
        also when its connection broke. A POST whose fate is unknown raises
        `PiKvmDeliveryUnknownError` (or `PiKvmTimeoutError`), which the operations below
        resolve by reading the state back. `body` may be a factory so a resent upload
        re-reads the file from the start.
        """
        url = self._api_url(path)
        self._warn_insecure_once()
        timeout = (self.timeout, read_timeout or self.timeout)
        delay = busy_delay = self.backoff
        attempt = 0
        busy_deadline: Deadline | None = None
        while True:
            data = body() if callable(body) else body
            all_headers = self._headers()
            if headers:
                all_headers.update(headers)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                    resp = self._session.request(
                        method,
                        url,
                        params=params,
                        data=data,
                        headers=all_headers,
                        timeout=timeout,
                        verify=self._verify_arg(),
                    )
            except requests.exceptions.SSLError as exc:
                raise PiKvmTlsError(
                    f"TLS handshake with the PiKVM at {url} failed: {_short(exc)}", url=url
                ) from None
            except requests.exceptions.ConnectionError as exc:  # includes ConnectTimeout
                never_sent = _never_sent(exc)
                if (never_sent or method == "GET") and attempt < self.retries:
                    attempt += 1
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if not never_sent and method != "GET":
                    raise PiKvmDeliveryUnknownError(
                        f"the connection to the PiKVM broke after {method} {url} was sent "
                        f"({_short(exc)}): kvmd may have carried it out",
                        url=url,
                    ) from None
                raise PiKvmConnectionError(
                    f"cannot reach the PiKVM at {url} after {attempt + 1} attempt(s): "
                    f"{_short(exc)}",
                    url=url,
                ) from None
            except requests.exceptions.Timeout:
                raise self._read_timeout(method, url, timeout[1]) from None
            if resp.status_code == 409:
                # kvmd refused it (busy): it did nothing, so resending is safe.
                busy_deadline = busy_deadline or Deadline(self.busy_timeout)
                if not busy_deadline.expired:
                    resp.close()
                    attempt += 1
                    busy_deadline.sleep(busy_delay)
                    busy_delay = min(busy_delay * 2, 1.0)
                    continue
            if 200 <= resp.status_code < 300:
                return resp
            raise self._error_for(method, url, resp, attempt + 1)

    @staticmethod
    def _read_timeout(method: str, url: str, seconds: float) -> PiKvmTimeoutError:
        acted = "" if method == "GET" else " (it may have carried it out: not resent)"
        return PiKvmTimeoutError(
            f"the PiKVM did not answer {method} {url} within {seconds:.0f} s{acted}", url=url
        )

    @staticmethod
    def _error_for(
        method: str, url: str, resp: requests.Response, attempts: int
    ) -> PiKvmError:
        kvmd_error = kvmd_message = None
        try:
            payload = resp.json()
            result = payload.get("result") if isinstance(payload, dict) else None
            if isinstance(result, dict):
                kvmd_error = result.get("error")
                kvmd_message = result.get("error_msg")
        except ValueError:
            pass
        cls = _STATUS_ERRORS.get(resp.status_code, PiKvmError)
        detail = ": ".join(p for p in (kvmd_error, kvmd_message) if p) or resp.reason or ""
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return cls(
            f"PiKVM {method} {url} failed with HTTP {resp.status_code}{tries}: {detail}",
            url=url,
            status=resp.status_code,
            kvmd_error=kvmd_error,
            kvmd_message=kvmd_message,
        )

    def _call(self, method: str, path: str, **request: Any) -> Any:
        """A request whose answer is kvmd's JSON envelope; returns its ``result``.

        `request` takes `_send`'s keywords: every request goes the one way through `_send`
        (retries, auth headers, TLS), only the envelope check is added here.
        """
        resp = self._send(method, path, **request)
        url = self._api_url(path)
        try:
            payload = resp.json()
        except ValueError:
            raise PiKvmProtocolError(
                f"PiKVM {method} {url} did not answer JSON "
                f"(Content-Type {resp.headers.get('Content-Type')!r})",
                url=url,
                status=resp.status_code,
            ) from None
        if not isinstance(payload, dict) or "ok" not in payload or "result" not in payload:
            raise PiKvmProtocolError(
                f"PiKVM {method} {url} answered JSON without the ok/result envelope",
                url=url,
                status=resp.status_code,
            )
        if payload["ok"] is not True:
            result = payload["result"] if isinstance(payload["result"], dict) else {}
            raise PiKvmError(
                f"PiKVM {method} {url} reported failure: "
                f"{result.get('error')}: {result.get('error_msg')}",
                url=url,
                status=resp.status_code,
                kvmd_error=result.get("error"),
                kvmd_message=result.get("error_msg"),
            )
        return payload["result"]

    def _wait_timeout(self, wait: bool) -> float | None:
        return max(self.op_timeout, self.timeout) if wait else None

    # -- auth ---------------------------------------------------------------------------

    def check_auth(self) -> None:
        """Raise `PiKvmAuthMissingError`/`PiKvmAuthRejectedError` unless the credentials work."""
        self._call("GET", "/auth/check")

    # -- ATX --------------------------------------------------------------------------

    def atx_state(self) -> AtxState:
        """Power/HDD LEDs and whether an ATX operation is running."""
        return AtxState.from_json(self._call("GET", "/atx"))

    def atx_power(self, action: str, *, wait: bool = True) -> None:
        """kvmd's intent-level power: ``on`` (only if the LED is off), ``off`` (short press,
        only if on), ``off_hard`` (long press), ``reset_hard`` (reset button).
        `wait` blocks until the press has finished.

        If the connection breaks after the request left, it is not resent: a press in
        progress, or the LED already showing the intent (``on``: lit; ``off``,
        ``off_hard``: dark) means it was carried out; otherwise
        `PiKvmDeliveryUnknownError`."""
        if action not in ATX_POWER_ACTIONS:
            raise HilError(
                f"unknown ATX power action {action!r}", f"use one of {', '.join(ATX_POWER_ACTIONS)}"
            )
        try:
            self._call(
                "POST",
                "/atx/power",
                params={"action": action, "wait": _flag(wait)},
                read_timeout=self._wait_timeout(wait),
            )
        except (PiKvmDeliveryUnknownError, PiKvmTimeoutError) as exc:
            want_led = {"on": True, "off": False, "off_hard": False}.get(action)
            self._atx_read_back(exc, wait, want_led)

    def atx_click(self, button: str, *, wait: bool = True) -> None:
        """Press a front-panel button unconditionally: ``power``, ``power_long`` or ``reset``.

        Never resent once it may have reached kvmd (a second ``power`` press toggles the
        board back): a press in progress proves it arrived, else
        `PiKvmDeliveryUnknownError`."""
        if button not in ATX_BUTTONS:
            raise HilError(f"unknown ATX button {button!r}", f"use one of {', '.join(ATX_BUTTONS)}")
        try:
            self._call(
                "POST",
                "/atx/click",
                params={"button": button, "wait": _flag(wait)},
                read_timeout=self._wait_timeout(wait),
            )
        except (PiKvmDeliveryUnknownError, PiKvmTimeoutError) as exc:
            self._atx_read_back(exc, wait, None)

    def _atx_read_back(self, exc: PiKvmError, wait: bool, want_led: bool | None) -> None:
        """Decide from ``GET /api/atx`` whether an ATX POST of unknown fate took effect."""
        st = self.atx_state()
        if st.busy:  # a press is running: ours arrived (kvmd finishes it regardless)
            if wait:
                self.wait_atx_idle()
            return
        if want_led is not None and st.power_led == want_led:
            return
        led = "on" if st.power_led else "off"
        raise PiKvmDeliveryUnknownError(
            f"{exc}; read back: no press in progress, power LED {led}", url=exc.url
        ) from None

    def wait_atx_idle(self, timeout: float | None = None, interval: float = 0.1) -> AtxState:
        """Poll ``GET /api/atx`` until no press is in progress and return that state.

        An LED read during a press is not the outcome: a long press lasts ~5.5 s and
        kvmd stays busy 1 s after releasing any button. Raises `PiKvmBusyError` after
        `timeout` (default `busy_timeout`)."""
        deadline = Deadline(self.busy_timeout if timeout is None else timeout)
        while True:
            st = self.atx_state()
            if not st.busy:
                return st
            if deadline.expired:
                url = self._api_url("/atx")
                raise PiKvmBusyError(
                    f"the PiKVM at {self.url} still reports an ATX press in progress after "
                    f"{deadline.seconds:g} s",
                    url=url,
                    hint="someone else is pressing buttons (web UI, another run?), "
                    "or kvmd is stuck: check the PiKVM",
                )
            deadline.sleep(interval)

    # -- streamer -----------------------------------------------------------------------

    def snapshot_bytes(
        self, *, allow_offline: bool = False, preview_max_width: int | None = None
    ) -> bytes:
        """The current screen as JPEG bytes (kvmd answers image/jpeg, not the envelope)."""
        params = {"allow_offline": _flag(allow_offline)}
        if preview_max_width:
            params.update(preview="1", preview_max_width=str(preview_max_width))
        resp = self._send("GET", "/streamer/snapshot", params=params)
        data = resp.content
        if not data.startswith(b"\xff\xd8"):
            url = self._api_url("/streamer/snapshot")
            raise PiKvmProtocolError(
                f"PiKVM snapshot from {url} is not a JPEG "
                f"(Content-Type {resp.headers.get('Content-Type')!r})",
                url=url,
                status=resp.status_code,
            )
        return data

    def snapshot(
        self,
        path: str | Path,
        *,
        allow_offline: bool = False,
        preview_max_width: int | None = None,
    ) -> Path:
        """Write the current screen to `path` as a JPEG (atomically) and return the path."""
        data = self.snapshot_bytes(allow_offline=allow_offline, preview_max_width=preview_max_width)
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
        return dest

    # -- HID ----------------------------------------------------------------------------

    def hid_print(self, text: str, *, limit: int = 0) -> None:
        """Type `text` on the board's keyboard (``limit=0``: no length limit).

        Like every HID request, never resent once it may have arrived (it would type
        twice); then `PiKvmDeliveryUnknownError`."""
        self._call(
            "POST",
            "/hid/print",
            params={"limit": str(limit)},
            body=text.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            read_timeout=self._wait_timeout(True),
        )

    def send_key(self, key: str) -> None:
        """Press and release one key by its web name (``Enter``, ``Delete``, ``F11``, ``KeyA``)."""
        self._call("POST", "/hid/events/send_key", params={"key": key})

    def send_shortcut(self, *keys: str) -> None:
        """Press `keys` together and release them (``send_shortcut("ControlLeft", "AltLeft",
        "Delete")``)."""
        if not keys:
            raise HilError("a shortcut needs at least one key", "e.g. ControlLeft,AltLeft,Delete")
        self._call("POST", "/hid/events/send_shortcut", params={"keys": ",".join(keys)})

    # -- MSD (virtual USB drive) ----------------------------------------------------------

    def msd_state(self) -> MsdState:
        return MsdState.from_json(self._call("GET", "/msd"))

    def msd_upload(
        self,
        path: str | Path,
        name: str | None = None,
        *,
        progress: ProgressCallback | None = None,
        replace: bool = False,
    ) -> MsdImage:
        """Upload the file `path` as image `name` (default: the file name).

        kvmd refuses to overwrite an image; with `replace` an existing one is removed
        first (which kvmd refuses while that image is connected). `progress(sent, total)`
        is called as bytes go out; an upload resent because the connection could not be
        opened restarts at 0.
        """
        src = Path(path)
        if not src.is_file():
            raise HilError(f"image {src} does not exist", "build or download the image first")
        image = name or src.name
        if replace and image in self.msd_state().images:
            self.msd_remove(image)
        total = src.stat().st_size
        handles: list[BinaryIO] = []

        def body() -> _ProgressReader:
            for fh in handles:
                fh.close()
            handles.clear()
            fh = src.open("rb")
            handles.append(fh)
            return _ProgressReader(fh, total, progress)

        try:
            result = self._call(
                "POST",
                "/msd/write",
                params={"image": image},
                body=body,
                headers={"Content-Type": "application/octet-stream"},
                read_timeout=max(self.op_timeout, self.timeout),
            )
        except (PiKvmDeliveryUnknownError, PiKvmTimeoutError) as exc:
            # Not resent (kvmd refuses an existing name): stored whole means it arrived.
            stored = self.msd_state().images.get(image)
            if stored is None or stored.size != total or not stored.complete:
                raise PiKvmDeliveryUnknownError(
                    f"{exc}; read back: image {image!r} is "
                    + ("not stored" if stored is None else f"stored with {stored.size} bytes"),
                    url=exc.url,
                ) from None
            return stored
        finally:
            for fh in handles:
                fh.close()
        info = (result or {}).get("image") or {}
        return MsdImage(
            str(info.get("name", image)),
            int(info.get("size", total)),
            bool(info.get("complete", True)),
        )

    def msd_set_params(
        self, image: str | None = None, *, cdrom: bool | None = None, rw: bool | None = None
    ) -> None:
        """Select `image` and/or the media type (CD-ROM or flash) and write access."""
        params: dict[str, str] = {}
        if image is not None:
            params["image"] = image
        if cdrom is not None:
            params["cdrom"] = _flag(cdrom)
        if rw is not None:
            params["rw"] = _flag(rw)
        self._call("POST", "/msd/set_params", params=params)

    def msd_set_connected(self, connected: bool) -> None:
        self._call("POST", "/msd/set_connected", params={"connected": _flag(connected)})

    def msd_connect(self) -> None:
        """Plug the selected image into the board as a USB drive."""
        self.msd_set_connected(True)

    def msd_disconnect(self) -> None:
        self.msd_set_connected(False)

    def msd_remove(self, image: str) -> None:
        self._call("POST", "/msd/remove", params={"image": image})

    def msd_reset(self) -> None:
        self._call("POST", "/msd/reset")

    # -- GPIO ---------------------------------------------------------------------------

    def gpio_state(self) -> GpioState:
        return GpioState.from_json(self._call("GET", "/gpio"))

    def gpio_channel(self, channel: str, timeout: float | None = None,
                     interval: float = 0.05) -> GpioChannel | None:
        """The channel `channel` once no operation runs on it (None if there is no such
        channel). kvmd reports ``state: false`` while a channel is busy, whatever the pin
        says, so a busy state is never taken as the relay's position."""
        deadline = Deadline(self.busy_timeout if timeout is None else timeout)
        while True:
            ch = self.gpio_state().channels.get(channel)
            if ch is None or not ch.busy:
                return ch
            if deadline.expired:
                raise PiKvmBusyError(
                    f"GPIO channel {channel!r} of the PiKVM at {self.url} is still busy after "
                    f"{deadline.seconds:g} s",
                    url=self._api_url("/gpio"),
                )
            deadline.sleep(interval)

    def gpio_switch(self, channel: str, state: bool, *, wait: bool = True) -> None:
        """Set an output channel (a relay: mains on/off) to `state`.

        If the connection breaks after the request left, the channel is read back: at
        `state` it was done; otherwise setting it again is safe (switching to a value,
        unlike pressing, cannot act twice) and done once."""
        params = {"channel": channel, "state": _flag(state), "wait": _flag(wait)}
        try:
            self._call("POST", "/gpio/switch", params=params,
                       read_timeout=self._wait_timeout(wait))
        except (PiKvmDeliveryUnknownError, PiKvmTimeoutError):
            ch = self.gpio_channel(channel)
            if ch is not None and ch.state == state:
                return
            self._call("POST", "/gpio/switch", params=params,
                       read_timeout=self._wait_timeout(wait))

    def gpio_pulse(self, channel: str, *, delay: float | None = None, wait: bool = True) -> None:
        """Pulse an output channel for `delay` seconds (kvmd's default when None).

        Never resent once it may have arrived: the channel busy proves it did, else
        `PiKvmDeliveryUnknownError`."""
        params = {"channel": channel, "wait": _flag(wait)}
        if delay is not None:
            params["delay"] = f"{delay:g}"
        try:
            self._call(
                "POST",
                "/gpio/pulse",
                params=params,
                read_timeout=self._wait_timeout(wait),
            )
        except (PiKvmDeliveryUnknownError, PiKvmTimeoutError) as exc:
            ch = self.gpio_state().channels.get(channel)
            if ch is not None and ch.busy:
                if wait:
                    self.gpio_channel(channel)
                return
            raise PiKvmDeliveryUnknownError(
                f"{exc}; read back: channel {channel!r} is not pulsing", url=exc.url
            ) from None

    # -- helpers for callers ------------------------------------------------------------

    def wait_power_led(self, on: bool, timeout: float, interval: float = 0.5) -> bool:
        """Poll the power LED until it shows `on` or `timeout` passes; return the last LED."""
        deadline = Deadline(timeout)
        while True:
            led = self.atx_state().power_led
            if led == on or deadline.expired:
                return led
            deadline.sleep(interval)


_NOT_CONNECTED = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)


def _never_sent(exc: BaseException) -> bool:
    """True when `exc` proves the request never left: the connection was not opened
    (refused, unresolvable, connect timeout). A reset or a missing answer proves nothing."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, _NOT_CONNECTED):
            return True
        reason = getattr(cur, "reason", None)
        todo += [reason if isinstance(reason, BaseException) else None, cur.__cause__,
                 cur.__context__]
        todo += [a for a in cur.args if isinstance(a, BaseException)]
    return False


def _short(exc: BaseException) -> str:
    """A one-line reason from a requests exception, whose text nests several layers
    (requests -> urllib3 MaxRetryError -> NewConnectionError/SSLError -> OSError)."""
    cur: BaseException = exc
    seen: set[int] = set()
    while id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cur.verify_message}"
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            cur = reason
        elif cur.args and isinstance(cur.args[0], BaseException):
            cur = cur.args[0]
        else:
            break
    text = str(cur) or type(cur).__name__
    if "): " in text and text.startswith(("HTTPConnection(", "HTTPSConnection(")):
        text = text.split("): ", 1)[1]  # drop urllib3's connection repr
    text = re.sub(r" \(_ssl\.c:\d+\)", "", text)
    return text.splitlines()[0][:200]


__all__ = [
    "ATX_BUTTONS",
    "ATX_POWER_ACTIONS",
    "AtxState",
    "GpioChannel",
    "GpioState",
    "InsecureTlsWarning",
    "MsdImage",
    "MsdState",
    "PiKvmAuthMissingError",
    "PiKvmAuthRejectedError",
    "PiKvmBadRequestError",
    "PiKvmBusyError",
    "PiKvmClient",
    "PiKvmConnectionError",
    "PiKvmDeliveryUnknownError",
    "PiKvmError",
    "PiKvmProtocolError",
    "PiKvmTimeoutError",
    "PiKvmTlsError",
    "PiKvmUnavailableError",
    "ProgressCallback",
    "totp",
]
