"""Bringing back a board that no longer boots: detect, restore the last known-good ROM, verify.

Every flash keeps a way back. A ROM becomes *known good* only when a board booted it to
its OS: `Target.flash_write` records what it wrote as pending, and the next successful
`Target.boot` promotes it (`KnownGood`). A board that then fails to boot is detected by
its silence (no firmware banner on serial, no SSH within their deadlines), the PiKVM's
screen is saved as evidence, and the known-good ROM goes back by the board's routes, in
order of preference (``firmware.recovery.routes`` in the inventory):

``spi``
    the external SPI programmer: flashrom on the PiKVM/RTE host over SSH (the twin: the
    dummy programmer on its chip file), with the board in G3: mains cut through the relay
    first, the SPI-enable GPIO channels switched on while writing when configured;
``usb``
    MSI's Flash BIOS button: the ROM goes on the PiKVM's virtual USB drive (a FAT image
    holding it under the file name the board expects, ``MSI.ROM``), the drive is
    connected, the Flash BIOS button is pressed through a GPIO channel, then a wait for
    the board to flash itself, and a power-on.

After each route the board must boot to its OS; the first route that achieves that wins.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.core.errors import ConfigError, HilError
from hil.core.inventory import Board
from hil.core.known_good import KnownGood
from hil.core.target import BANNER

log = logging.getLogger(__name__)

ROUTES = ("spi", "usb")


@dataclass(frozen=True)
class RecoveryConfig:
    """``firmware.recovery`` of a board in the inventory (all keys optional)."""

    routes: tuple[str, ...] = ("spi",)
    usb_file_name: str = "MSI.ROM"
    flash_bios_gpio: str | None = None  # GPIO channel wired to the Flash BIOS button
    spi_enable_gpios: tuple[str, ...] = ()  # switched on while the programmer writes
    usb_flash_wait_s: float = 300.0  # MSI's M-Flash takes minutes
    banner_timeout_s: float = 60.0
    ssh_timeout_s: float = 240.0

    @classmethod
    def of(cls, board: Board) -> RecoveryConfig:
        raw = (board.firmware or {}).get("recovery") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"boards.{board.name}.firmware.recovery: expected a mapping")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"boards.{board.name}.firmware.recovery: unknown key(s) "
                              f"{', '.join(sorted(unknown))}",
                              f"known: {', '.join(cls.__dataclass_fields__)}")
        kw: dict[str, Any] = dict(raw)
        for key in ("routes", "spi_enable_gpios"):
            if key in kw:
                kw[key] = tuple(kw[key])
        cfg = cls(**kw)
        bad = [r for r in cfg.routes if r not in ROUTES]
        if bad or not cfg.routes:
            raise ConfigError(f"boards.{board.name}.firmware.recovery.routes: {bad or 'empty'}",
                              f"use one or more of {', '.join(ROUTES)}")
        if "usb" in cfg.routes and not cfg.flash_bios_gpio:
            raise ConfigError(f"boards.{board.name}.firmware.recovery: route 'usb' needs "
                              "flash_bios_gpio", "name the GPIO channel wired to the button")
        return cfg


@dataclass
class Attempt:
    route: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class RecoveryResult:
    healthy_at_start: bool
    cause: str = ""
    evidence: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    rom: str = ""

    @property
    def recovered(self) -> bool:
        return self.healthy_at_start or any(a.ok for a in self.attempts)

    def to_json(self) -> dict[str, Any]:
        return {"healthy_at_start": self.healthy_at_start, "cause": self.cause,
                "evidence": self.evidence, "rom": self.rom, "recovered": self.recovered,
                "attempts": [a.__dict__ for a in self.attempts]}


def check_boots(target: Any, cfg: RecoveryConfig) -> str | None:
    """Power the board on and wait for the banner and SSH; None if it boots, else why not."""
    try:
        with contextlib.suppress(HilError):
            if target.is_on() and target.shell.is_reachable():
                return None
        if target.is_on():
            target.force_off()
        target.broken = None
        since = target.console.mark()
        target.power_on()
        try:
            target.console.expect(BANNER, timeout=cfg.banner_timeout_s, since=since)
        except HilError as e:
            return f"no firmware banner on serial within {cfg.banner_timeout_s:.0f} s ({e})"
        try:
            target.wait_ssh(cfg.ssh_timeout_s)
        except HilError as e:
            return f"firmware started but no SSH within {cfg.ssh_timeout_s:.0f} s ({e})"
        KnownGood(target.board).promote()
        return None
    except (HilError, OSError) as e:
        return f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e)


def _fat_image_with(rom: Path, name: str, dest: Path) -> Path:
    """A FAT32 drive image holding `rom` as `name`, as MSI's Flash BIOS button reads it."""
    for tool, pkg in (("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")):
        if shutil.which(tool) is None:
            raise HilError(f"'{tool}' is missing: the USB route builds a FAT drive image",
                           f"apt-get install {pkg}")
    size_mib = max(64, rom.stat().st_size * 2 // (1 << 20) + 16)
    with open(dest, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "WPPROM", str(dest)], check=True,
                   capture_output=True)
    subprocess.run(["mcopy", "-i", str(dest), str(rom), f"::{name}"], check=True,
                   capture_output=True)
    return dest


def restore_spi(target: Any, rom: Path, cfg: RecoveryConfig) -> str:
    """Write `rom` with the external programmer, the board in G3."""
    with contextlib.suppress(HilError):
        target.force_off()
    target.power.cut(stay_cut=True)
    try:
        for ch in cfg.spi_enable_gpios:
            target.pikvm.gpio_switch(ch, True)
        try:
            target.flash_write(rom)
        finally:
            for ch in cfg.spi_enable_gpios:
                with contextlib.suppress(HilError):
                    target.pikvm.gpio_switch(ch, False)
    finally:
        target.power.restore()
    return f"wrote {rom.name} ({rom.stat().st_size} bytes) with {target.flash.programmer}"


def restore_usb(target: Any, rom: Path, cfg: RecoveryConfig) -> str:
    """MSI Flash BIOS: the ROM on the PiKVM's USB drive, the button pressed, a wait."""
    assert cfg.flash_bios_gpio is not None  # RecoveryConfig.of checks it
    pikvm = target.pikvm
    with tempfile.TemporaryDirectory(prefix="hil-usb-") as tmp:
        image = _fat_image_with(rom, cfg.usb_file_name, Path(tmp) / "wpp-recovery.img")
        with contextlib.suppress(HilError):
            pikvm.msd_disconnect()
        with contextlib.suppress(HilError):
            pikvm.msd_remove(image.name)
        pikvm.msd_upload(image, name=image.name)
    pikvm.msd_set_params(image=image.name, cdrom=False, rw=False)
    pikvm.msd_connect()
    try:
        with contextlib.suppress(HilError):
            target.force_off()  # Flash BIOS works from standby (S5), mains on
        pikvm.gpio_pulse(cfg.flash_bios_gpio)
        time.sleep(cfg.usb_flash_wait_s)  # the twin's inventory sets 1 s
    finally:
        with contextlib.suppress(HilError):
            pikvm.msd_disconnect()
    return (f"{cfg.usb_file_name} on the virtual USB drive, Flash BIOS pressed "
            f"({cfg.flash_bios_gpio}), waited {cfg.usb_flash_wait_s:.0f} s")


RESTORERS = {"spi": restore_spi, "usb": restore_usb}


def recover(target: Any, *, rom: Path | None = None, routes: tuple[str, ...] | None = None,
            evidence_dir: Path | None = None, force: bool = False) -> RecoveryResult:
    """Detect a board that does not boot, restore a known-good ROM, verify it boots."""
    cfg = RecoveryConfig.of(target.board)
    known = KnownGood(target.board)
    cause = None if force else check_boots(target, cfg)
    if not force and cause is None:
        return RecoveryResult(healthy_at_start=True)
    result = RecoveryResult(healthy_at_start=False, cause=cause or "forced (--force)")
    log.warning("%s does not boot: %s", target.board.name, result.cause)
    with contextlib.suppress(Exception):  # evidence is best effort: the board is down
        shots = target.capture("recover-detect", evidence_dir)
        result.evidence = {k: str(v) for k, v in shots.items()}
    chosen = rom or known.rom()
    if chosen is None:
        raise HilError(f"no known-good ROM recorded for '{target.board.name}'",
                       "pass --rom FILE (a ROM this board booted before); a ROM becomes known "
                       "good when the board boots it after 'hil flash write'")
    result.rom = str(chosen)
    for route in routes or cfg.routes:
        if route not in RESTORERS:
            raise ConfigError(f"unknown recovery route '{route}'", f"use {', '.join(ROUTES)}")
        start = time.monotonic()
        try:
            detail = RESTORERS[route](target, chosen, cfg)
            why = check_boots(target, cfg)
            ok = why is None
            detail = detail + ("; boots to the OS" if ok else f"; still does not boot: {why}")
        except HilError as e:
            ok, detail = False, f"failed: {e}"
        result.attempts.append(Attempt(route, ok, detail, time.monotonic() - start))
        if ok:
            if rom is not None:
                known.set_good(chosen)
            break
    return result
