"""Build (or reuse from the content-hash cache) what the twin boots: kernel, guest, ROM.

The shell scripts own the recipes and the caching (`kernel/build.sh`,
`kernel/rootfs/build.sh`, `firmware/build.sh`); each prints the artifact's path on its
last stdout line. This module runs them with a progress line fed from their stderr and
keeps their full log in the run directory, so a failed build is debuggable after the fact.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from hil.cache.keys import sha256_file
from hil.cache.usage import mark_used
from hil.core.errors import HilError
from hil.core.progress import Progress
from hil.core.runs import REPO_ROOT, artifact_dir

FIRMWARE_SCRIPT = REPO_ROOT / "firmware" / "build.sh"
KERNEL_SCRIPT = REPO_ROOT / "kernel" / "build.sh"
ROOTFS_SCRIPT = REPO_ROOT / "kernel" / "rootfs" / "build.sh"

# The twin's kernel command line: the UART (listed last: the main console, which the
# serial port watches) and the VGA screen, so PiKVM-style screenshots show the kernel;
# the persistent device's BAR (ivshmem 1af4:1110) stays where the SMM handler finds it.
TWIN_CMDLINE = "console=tty0 console=ttyS0,115200 loglevel=6 wpp.pin_bars=1af4:1110"


@dataclass(frozen=True)
class TwinArtifacts:
    kernel: Path
    initrd: Path
    rom: Path

    def describe(self) -> dict[str, str]:
        parts = (("kernel", self.kernel), ("initrd", self.initrd), ("rom", self.rom))
        return {name: f"{p} (sha256 {sha256_file(p)[:16]})" for name, p in parts}


def run_build_script(label: str, argv: list[str], timeout: float = 3600) -> Path:
    """Run a build script; return the path it prints last. Progress shows its stderr."""
    script = Path(argv[0])
    if not script.is_file():
        raise HilError(f"build script {script} is missing", "check out the full repository")
    log_path = artifact_dir("build") / f"{label}.log"
    progress = Progress(f"build {label}")
    tail: deque[str] = deque(maxlen=25)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["bash", *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        out_lines: list[str] = []

        def pump_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out_lines.append(line.rstrip("\n"))
                log.write(line)

        t = threading.Thread(target=pump_stdout, daemon=True)
        t.start()
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            text = line.rstrip()
            if text:
                tail.append(text)
                progress.update(text[-100:])
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise HilError(f"{label} build timed out after {timeout:.0f} s",
                           f"see {log_path}") from None
        t.join(5)
    if rc != 0:
        last = "\n  ".join(tail)
        raise HilError(f"{label} build failed (exit {rc}); last lines:\n  {last}",
                       f"full log: {log_path}")
    path = Path(out_lines[-1].strip()) if out_lines else None
    if path is None or not path.exists():
        raise HilError(f"{label} build did not report an existing artifact path "
                       f"(got {out_lines[-1] if out_lines else 'nothing'!r})", f"see {log_path}")
    mark_used(path)  # the cache's LRU order (hil cache prune) is by use, not by build
    progress.done(f"{path}")
    return path


def kernel_image() -> Path:
    """The twin's bzImage (``kernel/build.sh emulated``)."""
    return run_build_script("kernel", [str(KERNEL_SCRIPT), "emulated"])


def guest_initramfs() -> Path:
    """The twin's guest initramfs (``kernel/rootfs/build.sh``), xz-compressed.

    xz instead of gzip: kernel + initramfs must fit the 16 MiB ROM as its payload
    (gzip left ~0.5 MB of room, xz ~6 MB).
    """
    return run_build_script("rootfs", [str(ROOTFS_SCRIPT), "--compress", "xz"])


def firmware_rom(kernel: Path, initrd: Path, cmdline: str = TWIN_CMDLINE) -> Path:
    """The twin's 16 MiB coreboot ROM with kernel + initramfs as its Linux payload."""
    return run_build_script(
        "firmware",
        [str(FIRMWARE_SCRIPT), "emulated", "--kernel", str(kernel), "--initrd", str(initrd),
         "--cmdline", cmdline],
    )


def twin_artifacts(cmdline: str = TWIN_CMDLINE) -> TwinArtifacts:
    kernel = kernel_image()
    initrd = guest_initramfs()
    return TwinArtifacts(kernel, initrd, firmware_rom(kernel, initrd, cmdline))


def twin_rom(cmdline: str = TWIN_CMDLINE) -> Path:
    """Everything the twin needs, built or reused; returns the ROM to flash."""
    return twin_artifacts(cmdline).rom
