"""Load and validate ``inventory.yaml``: the lab's boards as typed, frozen objects.

The schema is declared once, by the section dataclasses below: a field is a YAML key, its
type says how the value is checked (str, int >= 0, float, bool, Path, `Secret`, a nested
section, a mapping), and `key()` adds what a type cannot say (allowed values, a URL, a
required-if condition, a range). The generic `build_section` walks that declaration, so
adding a key is one edit. Rules that relate several keys (`RULES`) stay next to the section.

Why not pydantic (measured, see README): its schema is shorter, but it adds a dependency and
~250 ms to every `hil` start, and its messages need a translation layer to keep naming the
key path, what was expected and what was found as these do. Secrets are never stored
here: only the names of environment variables or files that hold them, resolved on demand
by the `Secret` objects (a missing secret names the variable or file).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
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

Check = Callable[[Any], "str | None"]  # a typed value -> what is wrong with it, or None


@dataclass(frozen=True)
class Key:
    """How one YAML key is checked beyond its type (kept in the field's metadata)."""

    check: Check | None = None
    required_if: Callable[[Mapping[str, Any]], bool] | None = None  # raw section -> required?
    secret: str | None = None  # a `Secret` field: what it is (named in errors)
    optional_secret: bool = False  # ... and whether a board may leave it unset (2FA)
    from_yaml: bool = True  # False: not read from the YAML (e.g. a board's name is its key)


_META = "hil.inventory"


def key(default: Any = dataclasses.MISSING, *, check: Check | None = None,
        required_if: Callable[[Mapping[str, Any]], bool] | None = None,
        from_yaml: bool = True) -> Any:
    """Declare an inventory key: no default means required (unless `required_if` says when)."""
    meta = {_META: Key(check, required_if, from_yaml=from_yaml)}
    return field(default=default, metadata=meta)


def secret(what: str, *, optional: bool = False) -> Any:
    """Declare a secret: the YAML names it by ``<field>_env`` and/or ``<field>_file``."""
    return field(default_factory=lambda: Secret(what, optional=optional),
                 metadata={_META: Key(secret=what, optional_secret=optional)})


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"expected one of {', '.join(choices)}, got {v!r}"


def url_check(*schemes: str) -> Check:
    """A URL with one of `schemes`, a host and (if any) a valid port."""

    def problem(v: str) -> str | None:
        parsed = urlparse(v)
        if parsed.scheme not in schemes or not parsed.hostname:
            return f"bad URL {v!r}: expected {' or '.join(s + '://host' for s in schemes)}"
        try:
            parsed.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return f"bad URL {v!r}: invalid port"
        return None

    return problem


def _serial_url(v: str) -> str | None:
    return None if v.startswith("/dev/") else url_check("rfc2217", "socket")(v)


def _runs_on(v: str) -> str | None:
    ok = v == "local" or (v.startswith("ssh:") and len(v) > 4)
    return None if ok else f"expected 'local' or 'ssh:<user@host>', got {v!r}"


def _port(v: int) -> str | None:
    return None if v <= 65535 else f"expected a port number (0-65535), got {v}"


def _chip_size(v: int) -> str | None:
    ok = v != 0 and v % 4096 == 0
    return None if ok else f"expected a chip size in bytes (multiple of 4096), got {v}"


def _pci_id(v: str) -> str | None:
    ids = v.split(":")
    ok = len(ids) == 2 and all(len(x) == 4 and all(c in "0123456789abcdefABCDEF" for c in x)
                               for x in ids)
    return None if ok else f"expected 'vvvv:dddd' (hex PCI ids), got {v!r}"


def _has_kind(v: dict[str, Any]) -> str | None:
    return None if "kind" in v else "expected a mapping with at least 'kind'"


@dataclass(frozen=True)
class Rule:
    """A check relating several keys of one section, reported at `key`."""

    key: str
    broken: Callable[[Any, Mapping[str, Any]], bool]  # (built section, raw mapping)
    message: str
    hint: str | None = None


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


@dataclass(frozen=True, kw_only=True)
class PiKVMConfig:
    url: str = key(check=url_check("http", "https"))
    user: str = key()
    password: Secret = secret("PiKVM password")
    totp_secret: Secret = secret("PiKVM TOTP secret", optional=True)
    verify: bool = key(True)
    ca_file: Path | None = key(None)

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule("password_env", lambda c, raw: not c.password.configured,
             "missing required key", "give password_env (or password_file)"),
    )


@dataclass(frozen=True, kw_only=True)
class PowerConfig:
    kind: str = key(check=one_of(*POWER_KINDS))
    off_timeout_s: float = key(60.0)  # graceful shutdown wait before holding the power button


@dataclass(frozen=True, kw_only=True)
class PowerCutConfig:
    kind: str = key(check=one_of(*POWER_CUT_KINDS))
    hold_s: float = key(15.0)
    channel: str | None = key(None, required_if=lambda raw: raw.get("kind") == "pikvm-gpio")
    url: str | None = key(None, check=url_check("http", "https"),
                          required_if=lambda raw: raw.get("kind") == "http-plug")
    user: str | None = key(None)
    password: Secret = secret("smart plug password", optional=True)
    # The GPIO state that means mains are cut (relay wiring): True when switching the
    # channel on opens the mains, False when the channel must be on for mains.
    cut_state: bool = key(True)

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule("cut_state", lambda c, raw: c.kind == "http-plug" and "cut_state" in raw,
             "only a GPIO relay has a cut_state (a smart plug is cut when off)"),
    )


@dataclass(frozen=True, kw_only=True)
class SerialConfig:
    url: str = key(check=_serial_url)  # rfc2217://, socket:// or a /dev/ tty
    baudrate: int = key(115200)


@dataclass(frozen=True, kw_only=True)
class SshConfig:
    host: str = key()
    port: int = key(22, check=_port)
    user: str = key("root")
    key_file: Path | None = key(None)
    password: Secret = secret("SSH password")


@dataclass(frozen=True, kw_only=True)
class FlashConfig:
    programmer: str = key()
    runs_on: str = key("local", check=_runs_on)
    chip_size: int = key(check=_chip_size)
    ifd_region: str | None = key(None)
    wp_disable: bool = key(False)
    power_off_for_write: bool = key(True)
    ssh_key_file: Path | None = key(None)
    ssh_password: Secret = secret("flash host SSH password")

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule("runs_on", lambda c, raw: bool(c.remote_host) and not (
            c.ssh_key_file or c.ssh_password.configured),
             "flashrom runs over SSH but no credentials are named",
             "add ssh_key_file (or ssh_password_env)"),
    )

    @property
    def remote_host(self) -> str | None:
        """``user@host`` when flashrom runs on another host, else None."""
        return self.runs_on.split(":", 1)[1] if self.runs_on.startswith("ssh:") else None


@dataclass(frozen=True, kw_only=True)
class WppConfig:
    mailbox_addr: int = key()
    region_size: int = key()
    device: str = key(check=one_of(*WPP_DEVICES))
    device_id: str = key(check=_pci_id)

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule("region_size", lambda c, raw: c.mailbox_addr + c.region_size > 1 << 32,
             "the WPP region must lie below 4 GiB (SMM reaches it)"),
    )


@dataclass(frozen=True, kw_only=True)
class EmulatedConfig:
    memory_mib: int = key(2048)
    smp: int = key(1)
    pdev_size: int = key(512 << 20)
    state_dir: Path = key()


@dataclass(frozen=True, kw_only=True)
class Board:
    name: str = key(from_yaml=False)  # the board's key under `boards:`
    description: str = key("")
    pikvm: PiKVMConfig = key()
    power: PowerConfig = key()
    power_cut: PowerCutConfig = key()
    serial: SerialConfig = key()
    ssh: SshConfig = key()
    flash: FlashConfig = key()
    firmware: dict[str, Any] = key(check=_has_kind)
    kernel: dict[str, Any] = key(check=_has_kind)
    wpp: WppConfig = key()
    emulated: EmulatedConfig | None = key(None)

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


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], Any, Key], ...]:
    """(field, resolved type, Key) of each YAML-read field of a section, in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_META, Key())
        if spec.from_yaml:
            out.append((f, hints[f.name], spec))
    return tuple(out)


def accepted_keys(cls: type) -> set[str]:
    """The YAML keys a section accepts, derived from its declaration (secrets: _env/_file)."""
    keys: set[str] = set()
    for f, _, spec in _fields(cls):
        keys |= {f"{f.name}_env", f"{f.name}_file"} if spec.secret else {f.name}
    return keys


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if isinstance(tp, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _kind(v: Any) -> str:
    return type(v).__name__


class _Section:
    """One mapping of the YAML with its key path: every error names file, key path, cause."""

    def __init__(self, path: Path, keypath: str, data: Any, allowed: set[str]) -> None:
        self.file = path
        self.keypath = keypath
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {_kind(data)}")
        self.data: dict[str, Any] = data
        unknown = sorted(set(data) - allowed)
        if unknown:
            self.fail(
                f"unknown key '{unknown[0]}'",
                f"allowed keys here: {', '.join(sorted(allowed))}",
                key=unknown[0],
            )

    def fail(self, msg: str, hint: str | None = None, key: str | None = None) -> typing.NoReturn:
        where = f"{self.keypath}.{key}" if key else self.keypath
        raise ConfigError(f"{self.file}: {where}: {msg}", hint)

    def get(self, key: str) -> Any:
        """The value of `key`; an absent key and ``null`` are both None."""
        return self.data.get(key)

    def typed(self, key: str, tp: Any) -> Any:
        """Check a present value against a field type; return it as the dataclass holds it."""
        v = self.data[key]
        if tp is bool:
            if not isinstance(v, bool):
                self.fail(f"expected true or false, got {v!r}", key=key)
        elif tp is int:
            if isinstance(v, bool) or not isinstance(v, int):
                self.fail(f"expected an integer, got {_kind(v)} {v!r}", key=key)
            if v < 0:
                self.fail(f"expected a non-negative integer, got {v}", key=key)
        elif tp is float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                self.fail(f"expected a number, got {_kind(v)} {v!r}", key=key)
            v = float(v)
        elif tp is str or tp is Path:
            if not isinstance(v, str):
                self.fail(f"expected a string, got {_kind(v)} {v!r}", key=key)
            if tp is Path:
                v = _expand_path(v)
        elif typing.get_origin(tp) is dict:
            if not isinstance(v, dict):
                self.fail(f"expected a mapping, got {_kind(v)}", key=key)
            v = dict(v)
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            v = build_section(tp, self.file, f"{self.keypath}.{key}", v)
        else:  # a declaration error, not the user's: fail loudly in the tests
            raise TypeError(f"inventory: no reader for {key}: {tp!r}")
        return v


def _expand_path(v: str) -> Path:
    """``~`` expanded and a leading ``{cache}`` replaced by the build cache
    (`hil.cache.keys.cache_root`, which honours ``$WPP_HIL_CACHE``): the twin's SSH key and
    state live there, and must follow the cache when a run moves it."""
    if v == CACHE_PLACEHOLDER or v.startswith(CACHE_PLACEHOLDER + "/"):
        v = str(cache_root()) + v[len(CACHE_PLACEHOLDER):]
    return Path(os.path.expanduser(v))


def build_section(cls: type, path: Path, keypath: str, data: Any, **given: Any) -> Any:
    """Build section `cls` from its YAML mapping, driven by the dataclass declaration alone."""
    sec = _Section(path, keypath, data, accepted_keys(cls))
    values: dict[str, Any] = dict(given)
    for f, hint, spec in _fields(cls):
        name = f.name
        if spec.secret:
            env = sec.typed(f"{name}_env", str) if sec.get(f"{name}_env") is not None else None
            file = (sec.typed(f"{name}_file", Path)
                    if sec.get(f"{name}_file") is not None else None)
            values[name] = Secret(spec.secret, env, file, spec.optional_secret)
            continue
        tp, _ = _optional(hint)
        if sec.get(name) is None:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required or (spec.required_if is not None and spec.required_if(sec.data)):
                sec.fail("missing required key", key=name)
            continue  # the dataclass default
        value = sec.typed(name, tp)
        problem = spec.check(value) if spec.check else None
        if problem:
            sec.fail(problem, key=name)
        values[name] = value
    built = cls(**values)
    for rule in getattr(cls, "RULES", ()):
        if rule.broken(built, sec.data):
            sec.fail(rule.message, rule.hint, key=rule.key)
    return built


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
    boards_raw = top.get("boards")
    if not isinstance(boards_raw, dict) or not boards_raw:
        top.fail("expected a non-empty mapping of boards", key="boards")
    boards = {str(n): build_section(Board, path, f"boards.{n}", b, name=str(n))
              for n, b in boards_raw.items()}
    default = top.typed("default_board", str) if top.get("default_board") is not None \
        else next(iter(boards))
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
