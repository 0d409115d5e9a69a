"""Deploying a kernel to a board, with the previous one kept as the way back.

One flow for both kinds of board: install the new kernel so the *next* boot (only that
one) uses it, reboot, check the running version, and only then make it the default. If the
new kernel does not come up, the board is power-cycled and comes back on the previous
kernel, which is checked too: the deploy then fails with the cause, and the board is left
as it was.

``board`` (the lab's MSI): the built ``.deb`` packages are copied over SFTP and installed
with ``dpkg -i``; GRUB's one-shot ``grub-reboot`` selects the new entry for one boot
(``GRUB_DEFAULT=saved`` is set if it is not), and ``grub-set-default`` keeps it once it
answered. A kernel that hangs is undone by the power cycle alone: GRUB boots the saved
default again.

``twin``: the kernel is part of the ROM payload, so the previous ROM is the previous boot
entry: a ROM with the new kernel is built and flashed, the twin boots; if it does not come
up, the previous ROM (read back from the chip before flashing) is flashed again.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.core.errors import ConfigError, HilError


@dataclass
class DeployResult:
    expected: str  # what the running kernel must report
    running: str = ""  # what it reported after the deploy (or the rollback)
    deployed: bool = False
    rolled_back: bool = False
    cause: str = ""
    steps: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def bzimage_version(kernel: Path) -> str:
    """The version string a bzImage carries (its setup header's kernel_version field)."""
    data = kernel.read_bytes()[:0x10000]
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        raise ConfigError(f"{kernel} is not a bzImage (no setup header)",
                          "pass the bzImage that kernel/build.sh emulated printed")
    (offset,) = struct.unpack_from("<H", data, 0x20E)
    start = offset + 0x200
    raw = data[start:start + 256].split(b"\0", 1)[0]
    return raw.decode(errors="replace").strip()


def uname_of(kernel_version: str) -> str:
    """`uname -r` and `uname -v` as the kernel will report them, from its version string
    (``<release> (<user>@<host>) <version>``), whitespace normalised."""
    m = re.match(r"(\S+) \([^)]*\) (.*)", kernel_version)
    text = f"{m.group(1)} {m.group(2)}" if m else kernel_version
    return " ".join(text.split())


UNAME = "printf '%s %s\\n' \"$(uname -r)\" \"$(uname -v)\""


def deb_version(debs: list[Path]) -> str:
    """`uname -r` of the linux-image package among `debs`."""
    for deb in debs:
        m = re.match(r"linux-image-(\d[^_]*)_", deb.name)
        if m and "dbg" not in deb.name:
            return m.group(1)
    raise ConfigError("no linux-image-*.deb among the packages",
                      "build them with 'hil build kernel --board <board>'")


def _wait_up(target: Any, timeout: float) -> str | None:
    """Boot (the target powers on if off); None when the OS answers, else why not.

    From off, the firmware banner is awaited too, so a ROM that boots becomes known good.
    """
    try:
        target.broken = None
        target.boot(timeout)
        return None
    except HilError as e:
        return str(e)


def _running(target: Any) -> str:
    return " ".join(target.shell.run(UNAME, timeout=30).stdout.split())


def _wait_down(target: Any, timeout: float = 120.0) -> None:
    """After asking for a reboot: wait until the old system stops answering."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and target.shell.is_reachable():
        time.sleep(1.0)


# -- the twin: the kernel is the ROM payload ---------------------------------------------------


def deploy_twin(target: Any, kernel: Path, *, rom_for: Any, timeout: float = 240.0,
                work: Path) -> DeployResult:
    """Flash a ROM whose payload is `kernel`; roll back to the chip's previous ROM if it
    does not boot. `rom_for(kernel)` builds that ROM (hil.build.twin.firmware_rom)."""
    want = uname_of(bzimage_version(kernel))
    result = DeployResult(expected=want)
    rom = Path(rom_for(kernel))
    result.steps.append(f"built ROM {rom.name} with kernel {want}")
    with contextlib.suppress(HilError):
        target.force_off()
    previous = work / "previous.rom"
    target.flash.read(previous)
    result.steps.append(f"kept the previous ROM ({previous})")
    target.flash_write(rom)
    result.steps.append("flashed the new ROM")
    why = _runs_new(target, result, lambda: _running(target), timeout)
    if why is None:
        result.steps.append("booted; the running kernel is the new one")
        return result
    result.steps.append(f"the new kernel did not come up: {why}")
    with contextlib.suppress(HilError):
        target.force_off()
    target.flash_write(previous)
    result.steps.append("flashed the previous ROM back")
    _back_up(target, timeout, "the previous ROM does not boot either",
             "hil recover --board <board> restores the last known-good ROM")
    result.rolled_back = True
    result.running = _running(target)
    result.steps.append("rolled back: the previous kernel runs")
    return result


def _runs_new(target: Any, result: DeployResult, running: Any, timeout: float) -> str | None:
    """None once the target is up and `running()` names the expected kernel (marked
    deployed); else why not, recorded as the result's cause."""
    why = _wait_up(target, timeout)
    if why is None:
        result.running = running()
        if result.running == result.expected:
            result.deployed = True
            return None
        why = f"booted, but runs '{result.running}'"
    result.cause = why
    return why


def _back_up(target: Any, timeout: float, what: str, hint: str) -> None:
    """Wait for the rolled-back target; a target that stays down is the user's to rescue."""
    back = _wait_up(target, timeout)
    if back is not None:
        raise HilError(f"rollback failed: {what} ({back})", hint)


# -- the lab board: Debian packages and GRUB ---------------------------------------------------

REMOTE_DIR = "/var/tmp/wpp-hil-deploy"
_GRUB_ENTRY = (
    "cfg=/boot/grub/grub.cfg; v={ver}; "
    "sub=$(sed -n \"s/^submenu .*\\$menuentry_id_option '\\([^']*\\)'.*/\\1/p\" $cfg | head -n1); "
    "ent=$(sed -n \"s/.*\\$menuentry_id_option '\\(gnulinux-$v-advanced-[^']*\\)'.*/\\1/p\" "
    "$cfg | head -n1); "
    "[ -n \"$ent\" ] || exit 3; [ -n \"$sub\" ] && echo \"$sub>$ent\" || echo \"$ent\""
)


def deploy_board(target: Any, debs: list[Path], *, timeout: float = 600.0,
                 put: Any = None) -> DeployResult:
    """Install `debs`, boot them once via grub-reboot, keep them if they answer."""
    from hil.drivers import transfer

    put = put or transfer.put
    want = deb_version(debs)
    result = DeployResult(expected=want)
    shell = target.shell

    def run(cmd: str, t: float = 600.0) -> str:
        res = shell.run(cmd, timeout=t, check=False)
        if res.exit_code != 0:
            raise HilError(f"'{cmd}' failed on {target.board.name} (exit {res.exit_code}): "
                           f"{res.stderr.strip()[-300:]}")
        return str(res.stdout).strip()

    before = run("uname -r", 30)
    result.steps.append(f"running kernel before: {before}")
    run(f"mkdir -p {REMOTE_DIR}", 30)
    for deb in debs:
        put(shell, deb, f"{REMOTE_DIR}/")
    names = " ".join(shlex.quote(f"{REMOTE_DIR}/{d.name}") for d in debs)
    run(f"DEBIAN_FRONTEND=noninteractive dpkg -i {names}")
    result.steps.append(f"installed {', '.join(d.name for d in debs)}")
    # grub-reboot needs GRUB_DEFAULT=saved; the saved default stays the previous kernel
    run("grep -q '^GRUB_DEFAULT=saved' /etc/default/grub || "
        "{ sed -i 's/^GRUB_DEFAULT=.*/GRUB_DEFAULT=saved/' /etc/default/grub && update-grub; }")
    entry = run(_GRUB_ENTRY.format(ver=shlex.quote(want)), 30)
    run(f"grub-reboot {shlex.quote(entry)}", 30)
    result.steps.append(f"next boot only: {entry}")
    shell.run("systemctl reboot || reboot", timeout=30, check=False)
    _wait_down(target)
    why = _runs_new(target, result, lambda: run("uname -r", 30), timeout)
    if why is None:
        run(f"grub-set-default {shlex.quote(entry)}", 30)
        result.steps.append("booted the new kernel; it is the default now")
        return result
    result.steps.append(f"the new kernel did not come up: {why}; power cycle to the previous")
    with contextlib.suppress(HilError):
        target.force_off()
    # GRUB's saved default: the previous kernel
    _back_up(target, timeout, "the board does not come back",
             "choose the previous entry in GRUB over the serial console (hil console), "
             "or hil recover")
    result.running = run("uname -r", 30)
    result.rolled_back = result.running == before
    result.steps.append(f"rolled back: running {result.running}")
    return result
