"""Load and validate ``inventory.yaml``: the lab's boards as typed, frozen objects.

Why a hand-written schema instead of a library: every error must name the file, the
key path and what was expected (unknown key, wrong type, missing key, bad URL), so a
lab user fixes the inventory in one go. Secrets are never stored here: only the names
of environment variables or files that hold them, resolved on demand by the
`Secret` objects (a missing secret names the variable or file).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from hil.cache.keys import cache_root
from hil.core.errors import ConfigError, MissingSecretError
from hil.core.runs import REPO_ROOT

CACHE_PLACEHOLDER = "{cache}"  # in path values: the build cache root

DEFAULT_INVENTORY = REPO_ROOT / "inventory.yaml"

POWER_KINDS = ("pikvm-atx",)
POWER_CUT_KINDS = ("pikvm-gpio", "http-plug", "qemu")
WPP_DEVICES = ("fpga", "ivshmem", "mmio")


@dataclass(frozen=True)
class Secret:
    """A secret taken from an environment variable or a file; the value is never stored.

    `env` wins over `file` when both are set and the variable exists. `repr` shows only
    where the secret comes from.
    """

    what: str
    env: str | None = None
    file: Path | None = None
    optional: bool = False  # e.g. the TOTP secret: a board without 2FA has none

    @property
    def configured(self) -> bool:
        return bool(self.env or self.file)

    def get(self) -> str:
        if self.env and os.environ.get(self.env):
            return os.environ[self.env]
        if self.file is not None:
            try:
                return self.file.read_text().strip()
            except OSError as exc:
                if not self.env:
                    raise MissingSecretError(
                        f"{self.what}: cannot read secret file {self.file}: {exc.strerror}",
                        f"create {self.file} (mode 0600) holding the {self.what}",
                    ) from None
        if self.env:
            where = f" or file {self.file}" if self.file else ""
            raise MissingSecretError(
                f"{self.what}: environment variable {self.env} is not set{where}",
                f"export {self.env}=... (never put secrets into inventory.yaml)",
            )
        raise MissingSecretError(f"{self.what}: no secret configured", "set *_env or *_file")

    def get_optional(self) -> str | None:
        return self.get() if self.configured and self._available() else None

    def _available(self) -> bool:
        if self.env and os.environ.get(self.env):
            return True
        return self.file is not None and self.file.is_file()

    def __repr__(self) -> str:
        src = [f"env={self.env}"] if self.env else []
        src += [f"file={self.file}"] if self.file else []
        return f"Secret({self.what}, {', '.join(src) or 'unset'})"


@dataclass(frozen=True)
class PiKVMConfig:
    url: str
    user: str
    password: Secret
    totp_secret: Secret
    verify: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True)
class PowerConfig:
    kind: str
    off_timeout_s: float = 60.0  # graceful shutdown wait before holding the power button


@dataclass(frozen=True)
class PowerCutConfig:
    kind: str
    hold_s: float
    channel: str | None = None
    url: str | None = None
    user: str | None = None
    password: Secret = field(default_factory=lambda: Secret("plug password", optional=True))
    # The GPIO state that means mains are cut (relay wiring): True when switching the
    # channel on opens the mains, False when the channel must be on for mains.
    cut_state: bool = True


@dataclass(frozen=True)
class SerialConfig:
    url: str
    baudrate: int = 115200


@dataclass(frozen=True)
class SshConfig:
    host: str
    port: int
    user: str
    key_file: Path | None
    password: Secret


@dataclass(frozen=True)
class FlashConfig:
    programmer: str
    runs_on: str
    chip_size: int
    ifd_region: str | None
    wp_disable: bool
    power_off_for_write: bool
    ssh_key_file: Path | None = None
    ssh_password: Secret = field(default_factory=lambda: Secret("flash host SSH password"))

    @property
    def remote_host(self) -> str | None:
        """``user@host`` when flashrom runs on another host, else None."""
        return self.runs_on.split(":", 1)[1] if self.runs_on.startswith("ssh:") else None


@dataclass(frozen=True)
class WppConfig:
    mailbox_addr: int
    region_size: int
    device: str
    device_id: str


@dataclass(frozen=True)
class EmulatedConfig:
    memory_mib: int
    smp: int
    pdev_size: int
    state_dir: Path


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    pikvm: PiKVMConfig
    power: PowerConfig
    power_cut: PowerCutConfig
    serial: SerialConfig
    ssh: SshConfig
    flash: FlashConfig
    firmware: dict[str, Any]
    kernel: dict[str, Any]
    wpp: WppConfig
    emulated: EmulatedConfig | None = None

    @property
    def is_emulated(self) -> bool:
        return self.emulated is not None

    def replace(self, **changes: Any) -> Board:
        """A copy with some sections replaced (e.g. a twin's actual endpoints)."""
        return dataclasses.replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        """A secret-free description for `hil inventory check`."""
        return {
            "name": self.name,
            "description": self.description,
            "pikvm": {
                "url": self.pikvm.url,
                "user": self.pikvm.user,
                "password": _secret_source(self.pikvm.password),
                "totp": _secret_source(self.pikvm.totp_secret),
                "verify": self.pikvm.verify if not self.pikvm.ca_file else str(self.pikvm.ca_file),
            },
            "power": self.power.kind,
            "power_cut": {
                "kind": self.power_cut.kind,
                "target": self.power_cut.channel or self.power_cut.url,
                "hold_s": self.power_cut.hold_s,
                **({"cut_state": self.power_cut.cut_state}
                   if self.power_cut.kind != "http-plug" else {}),
            },
            "serial": self.serial.url,
            "ssh": f"{self.ssh.user}@{self.ssh.host}:{self.ssh.port}"
            + (f" key={self.ssh.key_file}" if self.ssh.key_file else ""),
            "flash": {
                "programmer": self.flash.programmer,
                "runs_on": self.flash.runs_on,
                "chip_size": self.flash.chip_size,
                "region": self.flash.ifd_region,
            },
            "firmware": self.firmware.get("kind"),
            "kernel": self.kernel.get("kind"),
            "wpp": {
                "mailbox_addr": hex(self.wpp.mailbox_addr),
                "region_size": hex(self.wpp.region_size),
                "device": f"{self.wpp.device} ({self.wpp.device_id})",
            },
            **({"emulated": dataclasses.asdict(self.emulated)} if self.emulated else {}),
        }


def _secret_source(secret: Secret) -> str:
    if not secret.configured:
        return "-"
    parts = [f"${secret.env}"] if secret.env else []
    parts += [str(secret.file)] if secret.file else []
    missing = "not set, optional" if secret.optional else "MISSING"
    state = "set" if secret._available() else missing
    return f"{' or '.join(parts)} ({state})"


@dataclass(frozen=True)
class Inventory:
    path: Path
    default_board: str
    boards: dict[str, Board]

    def board(self, name: str | None = None) -> Board:
        name = name or self.default_board
        try:
            return self.boards[name]
        except KeyError:
            raise ConfigError(
                f"{self.path}: no board named '{name}'",
                f"known boards: {', '.join(sorted(self.boards))}",
            ) from None


# _Section's accessors are named after the types they check (str, bool), which hides
# the builtins inside its body: its signatures use these aliases.
_Str = str
_Bool = bool


class _Section:
    """Typed access to one mapping of the YAML, remembering its key path for errors."""

    def __init__(self, path: Path, keypath: str, data: Any, allowed: set[str]) -> None:
        self.file = path
        self.keypath = keypath
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        unknown = sorted(set(data) - allowed)
        if unknown:
            self.fail(
                f"unknown key '{unknown[0]}'",
                f"allowed keys here: {', '.join(sorted(allowed))}",
                key=unknown[0],
            )

    def fail(self, msg: str, hint: str | None = None, key: str | None = None) -> None:
        where = f"{self.keypath}.{key}" if key else self.keypath
        raise ConfigError(f"{self.file}: {where}: {msg}", hint)

    def _get(self, key: str, required: bool, default: Any) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.fail("missing required key", key=key)
            return default
        return self.data[key]

    def str(self, key: _Str, required: _Bool = True, default: _Str | None = None) -> Any:
        v = self._get(key, required, default)
        if v is not None and not isinstance(v, str):
            self.fail(f"expected a string, got {type(v).__name__} {v!r}", key=key)
        return v

    def int(self, key: _Str, required: _Bool = True, default: int | None = None) -> Any:
        v = self._get(key, required, default)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            self.fail(f"expected an integer, got {type(v).__name__} {v!r}", key=key)
        if v is not None and v < 0:
            self.fail(f"expected a non-negative integer, got {v}", key=key)
        return v

    def number(self, key: _Str, required: _Bool = True, default: float | None = None) -> Any:
        v = self._get(key, required, default)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            self.fail(f"expected a number, got {type(v).__name__} {v!r}", key=key)
        return None if v is None else float(v)

    def bool(self, key: _Str, required: _Bool = True, default: _Bool | None = None) -> Any:
        v = self._get(key, required, default)
        if v is not None and not isinstance(v, bool):
            self.fail(f"expected true or false, got {v!r}", key=key)
        return v

    def choice(self, key: _Str, choices: tuple[_Str, ...]) -> _Str:
        v = self.str(key)
        if v not in choices:
            self.fail(f"expected one of {', '.join(choices)}, got {v!r}", key=key)
        return v

    def url(self, key: _Str, schemes: tuple[_Str, ...], required: _Bool = True) -> Any:
        v = self.str(key, required)
        if v is None:
            return None
        parsed = urlparse(v)
        if parsed.scheme not in schemes or not parsed.hostname:
            self.fail(
                f"bad URL {v!r}: expected {' or '.join(s + '://host' for s in schemes)}", key=key
            )
        try:
            parsed.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.fail(f"bad URL {v!r}: invalid port", key=key)
        return v

    def path(self, key: _Str, required: _Bool = False) -> Path | None:
        """A path with ``~`` expanded and a leading ``{cache}`` replaced by the build cache
        (`hil.cache.keys.cache_root`, which honours ``$WPP_HIL_CACHE``): the twin's SSH key and
        state live there, and must follow the cache when a run moves it."""
        v = self.str(key, required)
        if v is None:
            return None
        if v == CACHE_PLACEHOLDER or v.startswith(CACHE_PLACEHOLDER + "/"):
            v = str(cache_root()) + v[len(CACHE_PLACEHOLDER):]
        return Path(os.path.expanduser(v))

    def secret(self, what: _Str, prefix: _Str, optional: _Bool = False) -> Secret:
        return Secret(what, self.str(f"{prefix}_env", False), self.path(f"{prefix}_file"),
                      optional)

    def sub(self, key: _Str, allowed: set[_Str], required: _Bool = True) -> _Section | None:
        v = self._get(key, required, None)
        if v is None:
            return None
        return _Section(self.file, f"{self.keypath}.{key}", v, allowed)


def _parse_serial_url(sec: _Section) -> str:
    url = sec.str("url")
    if url.startswith("/dev/"):
        return url
    return sec.url("url", ("rfc2217", "socket"))


def _parse_board(path: Path, name: str, data: Any) -> Board:
    top = _Section(
        path,
        f"boards.{name}",
        data,
        {"description", "pikvm", "power", "power_cut", "serial", "ssh", "flash", "firmware",
         "kernel", "wpp", "emulated"},
    )
    pk = top.sub("pikvm", {"url", "user", "password_env", "password_file", "totp_secret_env",
                           "totp_secret_file", "verify", "ca_file"})
    assert pk is not None
    pikvm = PiKVMConfig(
        url=pk.url("url", ("http", "https")),
        user=pk.str("user"),
        password=pk.secret("PiKVM password", "password"),
        totp_secret=pk.secret("PiKVM TOTP secret", "totp_secret", optional=True),
        verify=pk.bool("verify", False, True),
        ca_file=pk.path("ca_file"),
    )
    if not pikvm.password.configured:
        pk.fail("missing required key", "give password_env (or password_file)", key="password_env")

    pw = top.sub("power", {"kind", "off_timeout_s"})
    assert pw is not None
    power = PowerConfig(pw.choice("kind", POWER_KINDS), pw.number("off_timeout_s", False, 60.0))

    pc = top.sub("power_cut", {"kind", "channel", "url", "user", "password_env", "password_file",
                               "hold_s", "cut_state"})
    assert pc is not None
    kind = pc.choice("kind", POWER_CUT_KINDS)
    power_cut = PowerCutConfig(
        kind=kind,
        hold_s=pc.number("hold_s", False, 15.0),
        channel=pc.str("channel", kind == "pikvm-gpio"),
        url=pc.url("url", ("http", "https"), kind == "http-plug"),
        user=pc.str("user", False),
        password=pc.secret("smart plug password", "password", optional=True),
        cut_state=pc.bool("cut_state", False, True),
    )
    if kind == "http-plug" and "cut_state" in pc.data:
        pc.fail("only a GPIO relay has a cut_state (a smart plug is cut when off)",
                key="cut_state")

    se = top.sub("serial", {"url", "baudrate"})
    assert se is not None
    serial = SerialConfig(_parse_serial_url(se), se.int("baudrate", False, 115200))

    ss = top.sub("ssh", {"host", "port", "user", "key_file", "password_env", "password_file"})
    assert ss is not None
    ssh = SshConfig(
        host=ss.str("host"),
        port=ss.int("port", False, 22),
        user=ss.str("user", False, "root"),
        key_file=ss.path("key_file"),
        password=ss.secret("SSH password", "password"),
    )
    if ssh.port > 65535:
        ss.fail(f"expected a port number (0-65535), got {ssh.port}", key="port")

    fl = top.sub("flash", {"programmer", "runs_on", "chip_size", "ifd_region", "wp_disable",
                           "power_off_for_write", "ssh_key_file", "ssh_password_env",
                           "ssh_password_file"})
    assert fl is not None
    runs_on = fl.str("runs_on", False, "local")
    if runs_on != "local" and not (runs_on.startswith("ssh:") and len(runs_on) > 4):
        fl.fail(f"expected 'local' or 'ssh:<user@host>', got {runs_on!r}", key="runs_on")
    flash = FlashConfig(
        programmer=fl.str("programmer"),
        runs_on=runs_on,
        chip_size=fl.int("chip_size"),
        ifd_region=fl.str("ifd_region", False),
        wp_disable=fl.bool("wp_disable", False, False),
        power_off_for_write=fl.bool("power_off_for_write", False, True),
        ssh_key_file=fl.path("ssh_key_file"),
        ssh_password=fl.secret("flash host SSH password", "ssh_password"),
    )
    if flash.remote_host and not (flash.ssh_key_file or flash.ssh_password.configured):
        fl.fail("flashrom runs over SSH but no credentials are named",
                "add ssh_key_file (or ssh_password_env)", key="runs_on")
    if flash.chip_size == 0 or flash.chip_size % 4096:
        fl.fail(f"expected a chip size in bytes (multiple of 4096), got {flash.chip_size}",
                key="chip_size")

    firmware = top._get("firmware", True, None)
    kernel = top._get("kernel", True, None)
    for key, val in (("firmware", firmware), ("kernel", kernel)):
        if not isinstance(val, dict) or "kind" not in val:
            top.fail("expected a mapping with at least 'kind'", key=key)

    wp = top.sub("wpp", {"mailbox_addr", "region_size", "device", "device_id"})
    assert wp is not None
    wpp = WppConfig(
        mailbox_addr=wp.int("mailbox_addr"),
        region_size=wp.int("region_size"),
        device=wp.choice("device", WPP_DEVICES),
        device_id=wp.str("device_id"),
    )
    if wpp.mailbox_addr + wpp.region_size > 1 << 32:
        wp.fail("the WPP region must lie below 4 GiB (SMM reaches it)", key="region_size")
    vid = wpp.device_id.split(":")
    if len(vid) != 2 or not all(len(x) == 4 and all(c in "0123456789abcdefABCDEF" for c in x)
                                for x in vid):
        wp.fail(f"expected 'vvvv:dddd' (hex PCI ids), got {wpp.device_id!r}", key="device_id")

    emulated = None
    em = top.sub("emulated", {"memory_mib", "smp", "pdev_size", "state_dir"}, required=False)
    if em is not None:
        state = em.path("state_dir", True)
        assert state is not None
        emulated = EmulatedConfig(
            memory_mib=em.int("memory_mib", False, 2048),
            smp=em.int("smp", False, 1),
            pdev_size=em.int("pdev_size", False, 512 << 20),
            state_dir=state,
        )

    return Board(
        name=name,
        description=top.str("description", False, ""),
        pikvm=pikvm,
        power=power,
        power_cut=power_cut,
        serial=serial,
        ssh=ssh,
        flash=flash,
        firmware=dict(firmware),
        kernel=dict(kernel),
        wpp=wpp,
        emulated=emulated,
    )


def parse(text: str, path: Path) -> Inventory:
    """Parse inventory YAML text; `path` is only used in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    top = _Section(path, "(top)", data if data is not None else {}, {"default_board", "boards"})
    boards_raw = top._get("boards", True, None)
    if not isinstance(boards_raw, dict) or not boards_raw:
        top.fail("expected a non-empty mapping of boards", key="boards")
    boards = {str(n): _parse_board(path, str(n), b) for n, b in boards_raw.items()}
    default = top.str("default_board", False, next(iter(boards)))
    if default not in boards:
        top.fail(f"names no board: {default!r}", f"known: {', '.join(boards)}", key="default_board")
    return Inventory(path=path, default_board=default, boards=boards)


def load(path: Path | str | None = None) -> Inventory:
    """Load the inventory from `path`, ``$HIL_INVENTORY`` or the repository's inventory.yaml."""
    p = Path(path or os.environ.get("HIL_INVENTORY") or DEFAULT_INVENTORY)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read inventory {p}: {exc.strerror}",
            "pass --inventory PATH or set HIL_INVENTORY",
        ) from None
    return parse(text, p)
