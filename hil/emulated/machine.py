"""The twin's machine: one QEMU q35 process per power-on, owned by the twin's daemon.

"Powered on" means a QEMU process is running; powering off ends it. Each power-on
starts QEMU afresh from whatever the chip file holds (`-bios chip.bin`), so a flashed
image takes effect at the next power-on exactly as on a board, and a garbled image
genuinely fails to boot. RAM is lost with the process; the chip file and the
persistent-device file (ivshmem, file-backed, shared) survive.

QEMU is started from one long-lived launcher thread with PR_SET_PDEATHSIG, so it dies
with that thread (i.e. with the daemon) even if the daemon is SIGKILLed; its pid is
also written to ``qemu.pid`` and only ever killed after checking that its command line
names this state directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hil.core.errors import HilError, MissingToolError
from hil.emulated import accel as accels
from hil.emulated.accel import Accel
from hil.emulated.keys import text_to_chords, web_key_to_qcode
from hil.emulated.qmp import QmpClient
from hil.emulated.state import StateDir, TwinConfig, kill_tracked

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
_PR_SET_PDEATHSIG = 1
USB_DEVICE = "msd-usb"
USB_NODE = "msd-node"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def qemu_argv(state: StateDir, config: TwinConfig, accel: Accel | None = None) -> list[str]:
    """The QEMU command line for one power-on of the twin described by `config`."""
    ports = config.ports
    accel = accel or Accel("tcg", "default")
    return [
        QEMU,
        "-name", "wpp-twin",
        "-machine", "q35,smm=on",
        *accel.qemu_args(config.smp),
        "-m", str(config.memory_mib),
        "-smp", str(config.smp),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-device", "VGA",
        "-bios", str(state.chip),
        # QEMU is the client of the daemon's serial relay (see serial_relay.py)
        "-chardev", f"socket,id=ser0,path={state.serial_socket},server=off",
        "-serial", "chardev:ser0",
        "-chardev", f"socket,id=qmp,path={state.qmp_socket},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", f"file,id=dbg,path={state.debugcon_log},append=on",
        "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ports.ssh}-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-object",
        f"memory-backend-file,id=pdev,share=on,mem-path={state.pdev},size={config.pdev_size}",
        "-device", "ivshmem-plain,memdev=pdev",
        # writeback: what the guest wrote is in the host's page cache and survives a
        # SIGKILL of QEMU, like data that reached a real disk before mains were cut
        "-drive", f"file={state.disk},if=none,id=disk0,format=raw,cache=writeback",
        "-device", "virtio-blk-pci,drive=disk0",
        # the PiKVM's virtual USB drive is hot-plugged here (Machine.set_usb_drive)
        "-device", "qemu-xhci,id=xhci",
        *config.extra_qemu_args,
    ]


class Machine:
    """Start/stop/inspect the QEMU of one twin; thread-safe (the kvmd server is threaded)."""

    def __init__(self, state: StateDir, config: TwinConfig) -> None:
        if shutil.which(QEMU) is None:
            raise MissingToolError(QEMU, "qemu-system-x86")
        self.state = state
        self.config = config
        self.accel = accels.choose()
        # `hil emulate status` and the reports say which accelerator ran, and why
        (state.path / "accel").write_text(f"{self.accel.name} {self.accel.reason}\n")
        self._proc: subprocess.Popen[bytes] | None = None
        self._usb_drive: tuple[Path, bool] | None = None  # (image, read-only) when plugged
        self._lock = threading.RLock()
        # QEMU serves one monitor client at a time: serialize instead of queueing in QEMU
        self._qmp_lock = threading.Lock()
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="qemu-launcher")
        self.boots = 0

    # -- power ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        with self._lock:
            if self._proc is not None and self._proc.poll() is not None:
                self._reap()  # exited on its own (guest poweroff, crash)
            return self._proc is not None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self.running and self._proc else None

    def start(self) -> bool:
        """Power on: start QEMU from the chip file. False if it was already running."""
        with self._lock:
            if self.running:
                return False
            self._reap()
            proc = self._launcher.submit(self._spawn).result()
            self._proc = proc
            self.state.qemu_pidfile.write_text(f"{proc.pid}\n")
            self.boots += 1
        # QEMU refuses bad options, busy ports or unreadable files within a moment
        if not self._wait_monitor(10.0):
            with self._lock:
                code = proc.poll()
            if code is not None:
                self._reap()
                raise HilError(
                    f"QEMU exited at power-on (code {code}): {self._qemu_error()}",
                    f"see {self.state.qemu_log}",
                )
        with self._lock:
            if self._usb_drive is not None:  # a drive left plugged in while off
                self._plug_usb(*self._usb_drive)
        return True

    # -- the virtual USB drive -------------------------------------------------------------

    def set_usb_drive(self, image: Path | None, read_only: bool = True) -> None:
        """Plug `image` in as a USB mass-storage device (None: unplug). While the machine
        is off the drive stays plugged and appears at the next power-on, as on a board."""
        with self._lock:
            if self.running and self._usb_drive is not None:
                self._unplug_usb()
            self._usb_drive = (image, read_only) if image is not None else None
            if self.running and image is not None:
                self._plug_usb(image, read_only)

    @property
    def usb_drive(self) -> Path | None:
        with self._lock:
            return self._usb_drive[0] if self._usb_drive else None

    def _plug_usb(self, image: Path, read_only: bool) -> None:
        self.qmp("blockdev-add", {
            "driver": "raw", "node-name": USB_NODE, "read-only": read_only,
            "file": {"driver": "file", "filename": str(image), "read-only": read_only}})
        self.qmp("device_add", {"driver": "usb-storage", "id": USB_DEVICE, "drive": USB_NODE,
                                "bus": "xhci.0", "removable": True})

    def _unplug_usb(self) -> None:
        with contextlib.suppress(HilError):
            self.qmp("device_del", {"id": USB_DEVICE})
        # the block node can go once the device has let go of it
        end = time.monotonic() + 5.0
        while True:
            try:
                self.qmp("blockdev-del", {"node-name": USB_NODE})
                return
            except HilError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = qemu_argv(self.state, self.config, self.accel)
        with contextlib.suppress(FileNotFoundError):
            self.state.qmp_socket.unlink()
        logf = open(self.state.qemu_log, "ab")  # noqa: SIM115 - handed to the child
        try:
            logf.write(f"--- power on {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            logf.flush()
            return subprocess.Popen(
                argv,
                cwd=self.state.path,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            logf.close()

    def _wait_monitor(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.running:
                return False
            if self.state.qmp_socket.exists():
                return True
            time.sleep(0.05)
        return self.running

    def _qemu_error(self) -> str:
        try:
            lines = self.state.qemu_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        errors = [ln for ln in lines if not ln.startswith("---")]
        return errors[-1][:300] if errors else "no message"

    def _reap(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is not None:
                self._proc = None
                for path in (self.state.qemu_pidfile, self.state.qmp_socket):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def kill(self) -> bool:
        """Mains cut: SIGKILL at once (RAM lost, files kept). False if it was off."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._reap()
                return False
            proc.kill()
            proc.wait(10)
            self._reap()
            return True

    def quit(self, timeout: float = 5.0) -> bool:
        """Hard power off (long press): QMP quit, SIGKILL if QEMU does not exit in time."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._reap()
                return False
            with contextlib.suppress(HilError):
                self.qmp("quit")
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            self._reap()
            return True

    def powerdown(self) -> None:
        """Short press of the power button while on: ACPI power-button event."""
        self.qmp("system_powerdown")

    def reset(self) -> None:
        """Reset button: a warm reset of the running machine (RAM content not preserved)."""
        self.qmp("system_reset")

    def shutdown(self) -> None:
        """Stop QEMU for good (daemon exit)."""
        self.kill()
        self._launcher.shutdown(wait=False)
        kill_tracked(self.state.qemu_pidfile, str(self.state.path), signal.SIGKILL)

    # -- monitor -------------------------------------------------------------------------

    def qmp(self, command: str, arguments: dict[str, object] | None = None) -> object:
        if not self.running:
            raise HilError("the twin is powered off", "power it on first")
        with self._qmp_lock, QmpClient(self.state.qmp_socket) as q:
            return q.execute(command, arguments)

    def screendump_jpeg(self, quality: int = 85) -> bytes:
        """The current display as JPEG (PiKVM's streamer format)."""
        from PIL import Image

        png = self.state.path / "screen.png"
        self.qmp("screendump", {"filename": str(png), "format": "png"})
        with Image.open(png) as img:
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=quality)
        with contextlib.suppress(FileNotFoundError):
            png.unlink()
        return out.getvalue()

    def send_chord(self, qcodes: list[str], hold_ms: int = 50) -> None:
        self.qmp(
            "send-key",
            {"keys": [{"type": "qcode", "data": k} for k in qcodes], "hold-time": hold_ms},
        )

    def send_key(self, web_key: str) -> None:
        self.send_chord([web_key_to_qcode(web_key)])

    def send_shortcut(self, web_keys: list[str]) -> None:
        self.send_chord([web_key_to_qcode(k) for k in web_keys])

    def type_text(self, text: str) -> None:
        if not self.running:
            raise HilError("the twin is powered off", "power it on first")
        chords = text_to_chords(text)
        with self._qmp_lock, QmpClient(self.state.qmp_socket) as q:
            for chord in chords:
                q.execute(
                    "send-key",
                    {"keys": [{"type": "qcode", "data": k} for k in chord], "hold-time": 20},
                )
                time.sleep(0.03)


def ensure_files(state: StateDir, config: TwinConfig) -> None:
    """Create the chip (erased, 0xff), the persistent device (written zeros) and the
    guest's ext4 data disk if missing."""
    state.create()
    if not state.chip.exists() or state.chip.stat().st_size != config.chip_size:
        tmp = state.chip.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        write_fill(tmp, config.chip_size, 0xFF, mode=0o666)
        tmp.replace(state.chip)
    if not state.pdev.exists() or state.pdev.stat().st_size < config.pdev_size:
        write_fill(state.pdev, config.pdev_size, 0)
    if not state.disk.exists():
        make_data_disk(state.disk, config.disk_size)


def write_fill(path: Path, size: int, byte: int, mode: int = 0o600) -> None:
    """Extend `path` to `size` bytes by writing `byte` (existing bytes are kept): the
    erased chip (0xff) and the persistent device (zeros). A new file gets `mode`
    (less the umask).

    The device is written, not fallocated: QEMU maps the file shared, and the SMM
    handler's first store into each page of an unwritten (fallocated) or sparse extent
    costs the filesystem an extent conversion on ext4. Measured on the twin: the first 100 MiB
    persist into a fallocated device took 1,206 ms of SMM time, 776 ms into written
    zeros, 677-737 ms for later persists. 512 MiB of zeros take about 0.15 s (page cache).
    """
    block = bytes([byte]) * (1 << 20)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        pos = os.lseek(fd, 0, os.SEEK_END)
        while pos < size:
            pos += os.write(fd, block[: min(len(block), size - pos)])
    finally:
        os.close(fd)


def make_data_disk(path: Path, size: int) -> None:
    """A sparse raw image with an empty ext4 (journalled: a cut mid-write replays cleanly)."""
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    if not os.path.exists(mkfs):
        raise MissingToolError("mkfs.ext4", "e2fsprogs")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.truncate(size)
    res = subprocess.run([mkfs, "-q", "-F", "-L", "wpp-data", "-E", "nodiscard", str(tmp)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise HilError(f"mkfs.ext4 failed for the twin's data disk: {res.stderr.strip()}")
    tmp.replace(path)
