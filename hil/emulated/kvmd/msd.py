"""The PiKVM's mass-storage drive (MSD) as kvmd keeps it: images in a directory, one of
them selected and connected to the board as a USB drive.

Shared by the twin's production backend (which then plugs the image into QEMU) and the
simulated test board; it follows kvmd's rules and error names (busy during an upload,
no parameter change while connected, no second image of a name).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

from hil.drivers.pikvm import MsdImage, MsdState
from hil.emulated.kvmd.server import KvmdBusyError, KvmdError


class MsdStore:
    """kvmd's MSD state machine over the image files in `dir`."""

    def __init__(self, msd_dir: str | Path, storage_size: int = 1 << 30) -> None:
        self.dir = Path(msd_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.storage_size = storage_size
        self._lock = threading.RLock()
        self._image: str | None = None
        self._cdrom = True
        self._rw = False
        self._connected = False
        self._busy = False

    def _images(self) -> dict[str, MsdImage]:
        return {
            p.name: MsdImage(p.name, p.stat().st_size)
            for p in sorted(self.dir.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }

    def state(self) -> MsdState:
        with self._lock:
            images = self._images()
            used = sum(i.size for i in images.values())
            return MsdState(
                enabled=True,
                online=True,
                busy=self._busy,
                image=self._image if self._image in images else None,
                cdrom=self._cdrom,
                rw=self._rw,
                connected=self._connected,
                images=images,
                storage_size=self.storage_size,
                storage_free=max(0, self.storage_size - used),
            )

    def write(self, name: str, stream: BinaryIO, size: int | None) -> MsdImage:
        with self._lock:
            if self._busy:
                raise KvmdBusyError("another MSD operation is running", "MsdIsBusyError")
            if (self.dir / name).exists():
                raise KvmdError(f"image {name!r} already exists", "MsdImageExistsError")
            free = self.state().storage_free
            if size is not None and size > free:
                raise KvmdError(f"not enough space for {size} bytes", "MsdNoSpaceError")
            self._busy = True
        part = self.dir / f".{name}.part"
        written = 0
        try:
            with part.open("wb") as out:
                while chunk := stream.read(256 * 1024):
                    out.write(chunk)
                    written += len(chunk)
            if size is not None and written != size:
                raise KvmdError(f"upload ended after {written} of {size} bytes", "MsdUploadError")
            part.replace(self.dir / name)
        finally:
            part.unlink(missing_ok=True)
            with self._lock:
                self._busy = False
        return MsdImage(name, written)

    def set_params(self, image: str | None, cdrom: bool | None, rw: bool | None) -> None:
        with self._lock:
            if self._busy:
                raise KvmdBusyError("another MSD operation is running", "MsdIsBusyError")
            if self._connected:
                raise KvmdError("the drive is connected; disconnect first", "MsdConnectedError")
            if image is not None:
                if image and not (self.dir / image).is_file():
                    raise KvmdError(f"unknown image {image!r}", "MsdUnknownImageError")
                self._image = image or None
            if cdrom is not None:
                self._cdrom = cdrom
            if rw is not None:
                self._rw = rw

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            if self._busy:
                raise KvmdBusyError("another MSD operation is running", "MsdIsBusyError")
            if connected == self._connected:
                name = "MsdConnectedError" if connected else "MsdDisconnectedError"
                state = "connected" if connected else "disconnected"
                raise KvmdError(f"the drive is already {state}", name)
            if connected and (
                self._image is None or not (self.dir / self._image).is_file()
            ):
                raise KvmdError("no image selected", "MsdImageNotSelected")
            self._connected = connected

    def remove(self, name: str) -> None:
        with self._lock:
            if self._busy:
                raise KvmdBusyError("another MSD operation is running", "MsdIsBusyError")
            path = self.dir / name
            if not path.is_file():
                raise KvmdError(f"unknown image {name!r}", "MsdUnknownImageError")
            if self._connected and self._image == name:
                raise KvmdError("the image is connected; disconnect first", "MsdConnectedError")
            path.unlink()
            if self._image == name:
                self._image = None

    def reset(self) -> None:
        with self._lock:
            self._connected = False
            self._image = None
            self._busy = False
