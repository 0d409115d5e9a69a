"""Client for a Tasmota-style HTTP smart plug: the mains switch when there is no PiKVM relay.

An ATX button press never removes mains power; a power-loss test needs the PSU really
dead, which a smart plug provides. Tasmota's HTTP command interface is
``GET http://<plug>/cm?cmnd=Power%20On|Power%20Off|Power`` answering ``{"POWER": "ON"}``
(``POWER<n>`` for multi-relay plugs), with optional ``user``/``password`` query parameters.

The password travels in the query string, so this module uses `http.client` directly
(no library debug logging of URLs) and never puts the full URL into errors or reprs.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from urllib.parse import quote, urlsplit

from hil.core.errors import HilError


class PlugError(HilError):
    """The smart plug could not be reached or answered something unexpected."""


class TasmotaPlug:
    """One relay of a Tasmota plug at `url` (``http://plug.lab`` or just ``plug.lab``).

    `relay` selects ``Power<n>`` on multi-relay devices (None: the plain ``Power``
    command). Connection failures are retried `retries` times with a doubling `backoff`;
    every request is bounded by `timeout` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        relay: int | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PlugError(f"bad smart plug URL {url!r}", "write it as http://<plug-host>")
        self.url = f"{parts.scheme}://{parts.netloc}".rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self.user = user
        self._password = password
        self.relay = relay
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"TasmotaPlug(url={self.url!r}, relay={self.relay!r})"

    @property
    def _power(self) -> str:
        return f"Power{self.relay}" if self.relay is not None else "Power"

    def _command(self, command: str) -> dict[str, object]:
        """Run one Tasmota command and return its JSON answer."""
        query = "cmnd=" + quote(command, safe="")
        if self.user is not None:
            query += "&user=" + quote(self.user, safe="")
        if self._password is not None:
            query += "&password=" + quote(self._password, safe="")
        shown = f"{self.url}/cm?cmnd={quote(command, safe='')}"  # never the credentials
        delay = self.backoff
        for attempt in range(self.retries + 1):
            conn: http.client.HTTPConnection
            if self._scheme == "https":
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            try:
                conn.request("GET", "/cm?" + query)
                resp = conn.getresponse()
                body = resp.read(64 * 1024)
                status = resp.status
                break
            except TimeoutError:
                raise PlugError(
                    f"smart plug {shown} did not answer within {self.timeout:g} s",
                    "is the plug powered and on the network?",
                ) from None
            except OSError as exc:
                if attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                reason = exc.strerror or type(exc).__name__
                raise PlugError(
                    f"cannot reach the smart plug at {shown}: {reason}",
                    "is the plug powered and on the network? check its address",
                ) from None
            finally:
                conn.close()
        if status in (401, 403):
            raise PlugError(
                f"smart plug {shown} refused the credentials (HTTP {status})",
                "check the plug's web user/password secret",
            )
        if status != 200:
            raise PlugError(f"smart plug {shown} answered HTTP {status}")
        try:
            data = json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PlugError(
                f"smart plug {shown} did not answer Tasmota JSON",
                "is this a Tasmota device? check the URL",
            )
        if "WARNING" in data and not any(k.startswith("POWER") for k in data):
            # Tasmota answers 200 {"WARNING": "Need user=<username>&password=<password>"}.
            raise PlugError(
                f"smart plug {shown} refused the command: {data['WARNING']}",
                "check the plug's web user/password secret",
            )
        return data

    def _state_of(self, data: dict[str, object]) -> bool:
        keys = [self._power.upper()]
        if self.relay in (None, 1):
            keys += ["POWER", "POWER1"]  # single-relay devices answer either spelling
        for key in keys:
            value = data.get(key)
            if isinstance(value, str) and value.upper() in ("ON", "OFF"):
                return value.upper() == "ON"
        raise PlugError(
            f"smart plug at {self.url} answered without a {self._power.upper()} state: "
            f"{sorted(data)}",
            "check the relay number",
        )

    def is_on(self) -> bool:
        """Whether the relay (and so the board's mains) is on."""
        return self._state_of(self._command(self._power))

    def set(self, on: bool) -> None:
        """Switch the relay and check that the plug reports the new state."""
        state = self._state_of(self._command(f"{self._power} {'On' if on else 'Off'}"))
        if state != on:
            raise PlugError(
                f"smart plug at {self.url} still reports {'ON' if state else 'OFF'} "
                f"after switching it {'on' if on else 'off'}",
                "is the plug locked (PowerLock) or failing?",
            )

    def on(self) -> None:
        self.set(True)

    def off(self) -> None:
        self.set(False)


__all__ = ["PlugError", "TasmotaPlug"]
