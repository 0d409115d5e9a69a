"""A loopback HTTP server speaking the subset of PiKVM's kvmd API the bench uses.

Why: the emulated board must be driven by exactly the same client code as the lab board,
so the twin exposes its QEMU machine through this server, and the client's tests run
against real HTTP instead of mocks. The server does the protocol (authentication,
the ``{"ok", "result"}`` envelope, status codes, parameter validation, TLS); what the
buttons, screen, keyboard, GPIO and USB drive *do* is delegated to a `KvmdBackend`.

Two backends exist: `SimulatedBoardBackend` below (an in-memory state machine for tests)
and the twin's QEMU-backed one. A backend reports failures by raising `KvmdError`
subclasses, which become kvmd's status codes and error names.
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from hil.drivers.pikvm import (
    ATX_BUTTONS,
    ATX_POWER_ACTIONS,
    AtxState,
    GpioState,
    MsdImage,
    MsdState,
    totp,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- errors


class KvmdError(Exception):
    """A failed operation as kvmd reports it: HTTP `status` and an `error` name.

    Backends raise this (or a subclass) with a message; ``error`` defaults to the class's.
    """

    status = 400
    error = "OperationError"

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        if error:
            self.error = error


class KvmdBadParamError(KvmdError):
    """400: a parameter is missing or invalid (kvmd's ValidatorError)."""

    error = "ValidatorError"


class KvmdBusyError(KvmdError):
    """409: the device is busy with another operation; clients retry."""

    status = 409
    error = "IsBusyError"


class KvmdUnavailableError(KvmdError):
    """503: the resource (typically the streamer, i.e. the screen) is unavailable."""

    status = 503
    error = "UnavailableError"


# ----------------------------------------------------------------------------- backend protocol


@runtime_checkable
class KvmdBackend(Protocol):
    """What the server needs from a board. All methods may be called from several threads.

    Validation of parameter *syntax* (action names, booleans, numbers) is done by the
    server; a backend checks semantics and raises `KvmdError` (400), `KvmdBusyError`
    (409) or `KvmdUnavailableError` (503). Any other exception becomes HTTP 500.
    """

    def atx_state(self) -> AtxState:
        """LEDs and whether an ATX operation is in progress."""
        ...

    def atx_power(self, action: str, wait: bool) -> None:
        """`action` in on/off/off_hard/reset_hard, with kvmd's intent semantics: ``on``
        presses power only if the power LED is off; ``off`` (short press), ``off_hard``
        (long press) and ``reset_hard`` (reset button) act only if it is on. Raises
        `KvmdBusyError` if another ATX operation runs. `wait`: return only when done."""
        ...

    def atx_click(self, button: str, wait: bool) -> None:
        """Press `button` (power/power_long/reset) unconditionally; busy as above."""
        ...

    def snapshot(self) -> bytes:
        """The screen as JPEG bytes; `KvmdUnavailableError` when there is no video."""
        ...

    def hid_print(self, text: str) -> None:
        """Type `text` (already truncated to the request's limit)."""
        ...

    def hid_send_key(self, key: str) -> None:
        """Press and release one key, named as in the web KeyboardEvent.code (``Enter``)."""
        ...

    def hid_send_shortcut(self, keys: Sequence[str]) -> None:
        """Press `keys` in order, then release them in reverse order."""
        ...

    def gpio_state(self) -> GpioState:
        ...

    def gpio_switch(self, channel: str, state: bool, wait: bool) -> None:
        """Set an output channel; unknown channel -> `KvmdError`, busy -> `KvmdBusyError`."""
        ...

    def gpio_pulse(self, channel: str, delay: float | None, wait: bool) -> None:
        """Set the channel for `delay` seconds (None: the channel's default), then clear."""
        ...

    def msd_state(self) -> MsdState:
        ...

    def msd_write(self, name: str, stream: BinaryIO, size: int | None) -> MsdImage:
        """Store the image `name` read from `stream` (``read(n)`` until b""); `size` is the
        announced length or None (chunked upload). Refuse an existing name."""
        ...

    def msd_set_params(self, image: str | None, cdrom: bool | None, rw: bool | None) -> None:
        """Select an image and/or media type; refused while connected."""
        ...

    def msd_set_connected(self, connected: bool) -> None:
        """Plug/unplug the selected image into the board."""
        ...

    def msd_remove(self, name: str) -> None:
        ...

    def msd_reset(self) -> None:
        """Unplug, deselect, clear a stuck busy state (kvmd's recovery)."""
        ...


# ----------------------------------------------------------------------------- request plumbing


class _BodyReader(io.RawIOBase):
    """The request body as a stream: Content-Length or chunked transfer encoding."""

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool) -> None:
        super().__init__()
        self._rfile = rfile
        self._left = length if length is not None else (None if chunked else 0)
        self._chunked = chunked
        self._chunk_left = 0
        self._eof = self._left == 0 and not chunked

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        try:
            self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise KvmdBadParamError("malformed chunked request body") from None
        if self._chunk_left == 0:
            while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._eof = True

    def read(self, size: int = -1) -> bytes:
        if self._eof:
            return b""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(64 * 1024), b""))
        if self._chunked:
            if self._chunk_left == 0:
                self._next_chunk()
                if self._eof:
                    return b""
            data = self._rfile.read(min(size, self._chunk_left))
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._rfile.readline(16)  # CRLF after the chunk
            if not data:
                self._eof = True
            return data
        assert self._left is not None
        data = self._rfile.read(min(size, self._left))
        self._left -= len(data)
        if not data or self._left == 0:
            self._eof = True
        return data

    @property
    def finished(self) -> bool:
        return self._eof

    @property
    def remaining(self) -> int | None:
        """Bytes left if known (Content-Length), else None."""
        return None if self._chunked else self._left


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str]
    body: _BodyReader
    headers: Any

    def param(self, name: str, default: str | None = None) -> str:
        value = self.params.get(name, default)
        if value is None:
            raise KvmdBadParamError(f"missing parameter {name!r}")
        return value

    def bool_param(self, name: str, default: bool | None = None) -> bool:
        raw = self.params.get(name)
        if raw is None:
            if default is None:
                raise KvmdBadParamError(f"missing parameter {name!r}")
            return default
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise KvmdBadParamError(f"parameter {name!r} must be a boolean, not {raw!r}")

    def opt_bool(self, name: str) -> bool | None:
        return self.bool_param(name) if name in self.params else None

    def float_param(self, name: str) -> float | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return None
        try:
            return float(raw)
        except ValueError:
            raise KvmdBadParamError(f"parameter {name!r} must be a number, not {raw!r}") from None

    def int_param(self, name: str, default: int) -> int:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise KvmdBadParamError(f"parameter {name!r} must be an integer, not {raw!r}") from None


@dataclass(frozen=True)
class _Raw:
    """A non-envelope answer (the JPEG snapshot, OCR text)."""

    content_type: str
    data: bytes


@dataclass(frozen=True)
class RequestRecord:
    """One served request, for tests and debugging (never includes credentials)."""

    method: str
    path: str
    status: int


_Route = Callable[[_Request], "dict[str, Any] | _Raw | None"]

_SMALL_BODY = 4 * 1024 * 1024


def atx_action_button(action: str, power_led: bool) -> str | None:
    """The button kvmd presses for an ATX power `action`, or None when there is nothing
    to do: kvmd acts only when the power LED shows the opposite of what is asked."""
    return {
        "on": None if power_led else "power",
        "off": "power" if power_led else None,
        "off_hard": "power_long" if power_led else None,
        "reset_hard": "reset" if power_led else None,
    }[action]


def perform_op(work: Callable[[], None], wait: bool, name: str) -> None:
    """Run a long operation (an ATX press, a GPIO pulse) the way kvmd's ``wait`` flag asks:
    wait=1 answers after it is done, wait=0 answers at once while it runs in the background
    (the caller has marked it busy, so a second request meanwhile gets 409)."""
    if wait:
        work()
    else:
        threading.Thread(target=work, daemon=True, name=name).start()


def _valid_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise KvmdBadParamError(f"invalid image name {name!r}")
    return name


def _placeholder_jpeg(text: str, width: int = 640, height: int = 480) -> bytes:
    """A dark JPEG saying `text`: what kvmd serves for allow_offline=1 without video."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (16, 16, 16))
    ImageDraw.Draw(img).text((20, height // 2 - 10), text, fill=(200, 200, 200))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def _resize_jpeg(data: bytes, max_width: int, quality: int) -> bytes:
    from PIL import Image

    img: Image.Image = Image.open(io.BytesIO(data))
    if img.width > max_width > 0:
        img = img.resize((max_width, max(1, img.height * max_width // img.width)))
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


# ----------------------------------------------------------------------------- server


class KvmdServer:
    """Serve `backend` as a kvmd API at ``<url>/api``; started on construction.

    Authentication (as kvmd): ``X-KVMD-User``/``X-KVMD-Passwd`` headers, HTTP Basic, or
    the ``auth_token`` cookie from ``POST /api/auth/login`` (form fields user, passwd).
    No credentials -> 401, wrong ones -> 403. With `totp_secret`, the password must be
    followed by the current 6-digit TOTP code (one 30 s step of clock skew accepted).
    With `certfile` (and `keyfile`) the server speaks HTTPS.

    ``with KvmdServer(backend) as srv: client = PiKvmClient(srv.url, "admin", "admin")``
    """

    def __init__(
        self,
        backend: KvmdBackend,
        *,
        user: str = "admin",
        password: str = "admin",
        totp_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
    ) -> None:
        self.backend = backend
        self.user = user
        self._password = password
        self._totp_secret = totp_secret
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._drops: dict[tuple[str, str], list[bool]] = {}
        self.tls = certfile is not None
        self._routes = self._build_routes()
        handler = self._handler_class()
        self._httpd = _QuietThreadingServer((host, port), handler)
        if certfile is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
            # Handshake in the handler thread, so one stuck client cannot block accept().
            self._httpd.socket = ctx.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        bound = self._httpd.server_address
        self.host, self.port = str(bound[0]), int(bound[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name=f"kvmd-server-{self.port}",
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"KvmdServer(url={self.url!r}, user={self.user!r})"

    @property
    def url(self) -> str:
        """Base URL (clients add ``/api/...``)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def __enter__(self) -> KvmdServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connections(self) -> int:
        """How many connections were accepted (TLS rejects included): tests see whether a
        client tried again even when no request got through."""
        return self._httpd.accepted

    def drop_connection(self, method: str, path: str, *, after_op: bool, times: int = 1) -> None:
        """Make the next `times` requests for `method` `path` lose their connection with no
        answer: before the backend sees them (``after_op=False``), or after it carried them
        out (``after_op=True``). kvmd finishes an operation whose client went away, so the
        second case is the one a client cannot tell from the first: it must not resend."""
        with self._lock:
            self._drops.setdefault((method, path), []).extend([after_op] * times)

    def _take_drop(self, method: str, path: str) -> bool | None:
        with self._lock:
            pending = self._drops.get((method, path))
            return pending.pop(0) if pending else None

    def count(self, method: str, path: str) -> int:
        """How many requests for `method` `path` were served (tests use it to see retries)."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and r.path == path)

    # -- auth ---------------------------------------------------------------------------

    def _password_ok(self, user: str, passwd: str) -> bool:
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        if not self._totp_secret:
            return user_ok and hmac.compare_digest(passwd.encode(), self._password.encode())
        now = time.time()
        codes = [totp(self._totp_secret, now + skew) for skew in (-30, 0, 30)]
        ok = any(
            hmac.compare_digest(passwd.encode(), (self._password + code).encode())
            for code in codes
        )
        return user_ok and ok

    def _check_auth(self, headers: Any) -> None:
        user = headers.get("X-KVMD-User")
        passwd = headers.get("X-KVMD-Passwd")
        if user is None and passwd is None:
            auth = headers.get("Authorization", "")
            if auth.lower().startswith("basic "):
                try:
                    user, _, passwd = (
                        base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
                    )
                except (ValueError, UnicodeDecodeError):
                    raise _AuthError(403, "ForbiddenError", "malformed Basic credentials") from None
        if user is None and passwd is None:
            token = _cookie(headers.get("Cookie", ""), "auth_token")
            if token is not None:
                with self._lock:
                    known = token in self._tokens
                if known:
                    return
                raise _AuthError(403, "ForbiddenError", "invalid auth token")
            raise _AuthError(401, "UnauthorizedError", "no credentials given")
        if not self._password_ok(user or "", passwd or ""):
            raise _AuthError(403, "ForbiddenError", "invalid credentials")

    def _login(self, req: _Request) -> tuple[dict[str, Any], dict[str, str]]:
        raw = req.body.read(_SMALL_BODY).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if not self._password_ok(form.get("user", ""), form.get("passwd", "")):
            raise _AuthError(403, "ForbiddenError", "invalid credentials")
        token = secrets.token_hex(32)
        with self._lock:
            self._tokens.add(token)
        return {}, {"Set-Cookie": f"auth_token={token}; Path=/; HttpOnly"}

    # -- routes -------------------------------------------------------------------------

    def _build_routes(self) -> dict[tuple[str, str], _Route]:
        b = self.backend

        def atx_power(r: _Request) -> None:
            action = r.param("action")
            if action not in ATX_POWER_ACTIONS:
                raise KvmdBadParamError(f"invalid ATX power action {action!r}")
            b.atx_power(action, r.bool_param("wait", False))

        def atx_click(r: _Request) -> None:
            button = r.param("button")
            if button not in ATX_BUTTONS:
                raise KvmdBadParamError(f"invalid ATX button {button!r}")
            b.atx_click(button, r.bool_param("wait", False))

        def snapshot(r: _Request) -> _Raw:
            if r.bool_param("ocr", False):
                raise KvmdError("OCR is not supported by this server", "OcrNotSupportedError")
            try:
                data = b.snapshot()
            except KvmdUnavailableError:
                if not r.bool_param("allow_offline", False):
                    raise
                data = _placeholder_jpeg("NO SIGNAL")
            if r.bool_param("preview", False):
                width = r.int_param("preview_max_width", 0)
                data = _resize_jpeg(data, width, r.int_param("preview_quality", 80))
            return _Raw("image/jpeg", data)

        def hid_print(r: _Request) -> None:
            limit = r.int_param("limit", 1024)
            text = r.body.read(_SMALL_BODY).decode("utf-8", "replace")
            b.hid_print(text[:limit] if limit > 0 else text)

        def send_key(r: _Request) -> None:
            b.hid_send_key(r.param("key"))

        def send_shortcut(r: _Request) -> None:
            keys = [k.strip() for k in r.param("keys").split(",") if k.strip()]
            if not keys:
                raise KvmdBadParamError("empty shortcut")
            b.hid_send_shortcut(keys)

        def gpio_switch(r: _Request) -> None:
            b.gpio_switch(r.param("channel"), r.bool_param("state"), r.bool_param("wait", False))

        def gpio_pulse(r: _Request) -> None:
            b.gpio_pulse(r.param("channel"), r.float_param("delay"), r.bool_param("wait", False))

        def msd_write(r: _Request) -> dict[str, Any]:
            name = _valid_name(r.param("image"))
            img = b.msd_write(name, r.body, r.body.remaining)  # type: ignore[arg-type]
            return {"image": {"name": img.name, "size": img.size, "complete": img.complete}}

        def msd_set_params(r: _Request) -> None:
            image = r.params.get("image")
            b.msd_set_params(
                _valid_name(image) if image is not None else None,
                r.opt_bool("cdrom"),
                r.opt_bool("rw"),
            )

        def msd_remove(r: _Request) -> None:
            b.msd_remove(_valid_name(r.param("image")))

        return {
            ("GET", "/api/auth/check"): lambda r: {},
            ("GET", "/api/atx"): lambda r: b.atx_state().to_json(),
            ("POST", "/api/atx/power"): atx_power,
            ("POST", "/api/atx/click"): atx_click,
            ("GET", "/api/streamer/snapshot"): snapshot,
            ("POST", "/api/hid/print"): hid_print,
            ("POST", "/api/hid/events/send_key"): send_key,
            ("POST", "/api/hid/events/send_shortcut"): send_shortcut,
            ("GET", "/api/gpio"): lambda r: b.gpio_state().to_json(),
            ("POST", "/api/gpio/switch"): gpio_switch,
            ("POST", "/api/gpio/pulse"): gpio_pulse,
            ("GET", "/api/msd"): lambda r: b.msd_state().to_json(),
            ("POST", "/api/msd/write"): msd_write,
            ("POST", "/api/msd/set_params"): msd_set_params,
            ("POST", "/api/msd/set_connected"): lambda r: b.msd_set_connected(
                r.bool_param("connected")
            ),
            ("POST", "/api/msd/remove"): msd_remove,
            ("POST", "/api/msd/reset"): lambda r: b.msd_reset(),
        }

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "wpp-hil-kvmd"
            # headers and body go out in separate writes: with Nagle on, the body waited
            # for the client's delayed ACK, 40 ms on every keep-alive request (measured)
            disable_nagle_algorithm = True
            _recorded = False  # whether this request's status is already in server.requests

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("kvmd %s: " + format, self.client_address[0], *args)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def _send(
                self, status: int, ctype: str, data: bytes, extra: dict[str, str] | None = None
            ) -> None:
                # Record before answering, so a client that got the answer sees the record.
                server._record(self.command, urlsplit(self.path).path.rstrip("/") or "/", status)
                self._recorded = True
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def _envelope(
                self, status: int, ok: bool, result: Any, extra: dict[str, str] | None = None
            ) -> None:
                data = json.dumps({"ok": ok, "result": result}).encode()
                self._send(status, "application/json", data, extra)

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = parts.path.rstrip("/") or "/"
                query = parse_qs(parts.query, keep_blank_values=True)
                params = {k: v[-1] for k, v in query.items()}
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                try:
                    length = int(self.headers.get("Content-Length", "0") or 0)
                except ValueError:
                    length = 0
                body = _BodyReader(self.rfile, None if chunked else length, chunked)  # type: ignore[arg-type]
                req = _Request(method, path, params, body, self.headers)
                status = 500
                self._recorded = False
                try:
                    status = self._handle(req)
                finally:
                    if not self._recorded:
                        server._record(method, path, status)
                    self._finish_body(body)

            def _finish_body(self, body: _BodyReader) -> None:
                """Drain a small unread body so keep-alive stays in sync; else close."""
                if body.finished:
                    return
                left = body.remaining
                if left is not None and left <= _SMALL_BODY:
                    body.read(left)
                else:
                    self.close_connection = True

            def _handle(self, req: _Request) -> int:
                extra: dict[str, str] | None = None
                try:
                    if (req.method, req.path) == ("POST", "/api/auth/login"):
                        result, extra = server._login(req)
                        self._envelope(200, True, result, extra)
                        return 200
                    route = server._routes.get((req.method, req.path))
                    if route is None:
                        known = any(p == req.path for _, p in server._routes)
                        status = 405 if known else 404
                        err = "HttpMethodNotAllowed" if known else "HttpNotFound"
                        self._envelope(status, False, {"error": err, "error_msg": req.path})
                        return status
                    server._check_auth(self.headers)
                    drop = server._take_drop(req.method, req.path)
                    if drop is not None:
                        if drop:
                            route(req)
                        self.close_connection = True  # hang up without an answer
                        return 499
                    routed = route(req)
                    if isinstance(routed, _Raw):
                        self._send(200, routed.content_type, routed.data)
                    else:
                        self._envelope(200, True, routed if routed is not None else {})
                    return 200
                except _AuthError as exc:
                    self._finish_body(req.body)
                    self._envelope(exc.status, False, {"error": exc.error, "error_msg": str(exc)})
                    return exc.status
                except KvmdError as exc:
                    self._finish_body(req.body)
                    self._envelope(exc.status, False, {"error": exc.error, "error_msg": str(exc)})
                    return exc.status
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return 499
                except Exception as exc:  # a backend bug: report it, keep serving
                    log.exception("kvmd backend failed on %s %s", req.method, req.path)
                    self.close_connection = True
                    self._envelope(
                        500, False, {"error": type(exc).__name__, "error_msg": str(exc)}
                    )
                    return 500

        return Handler


class _AuthError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class _QuietThreadingServer(ThreadingHTTPServer):
    """Threaded server whose per-connection failures (TLS rejects, resets) are logged at
    debug level instead of printed as tracebacks."""

    daemon_threads = True
    allow_reuse_address = True
    accepted = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.accepted += 1  # only the serve_forever thread calls this
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("kvmd connection from %s failed", client_address, exc_info=True)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


# ----------------------------------------------------------------------------- simulated board


__all__ = [
    "KvmdBackend",
    "KvmdBadParamError",
    "KvmdBusyError",
    "KvmdError",
    "KvmdServer",
    "KvmdUnavailableError",
    "RequestRecord",
]
