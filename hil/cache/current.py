"""Which build-cache entries the current working tree maps to (the ones in use).

The build scripts own the cache keys, and each prints its keys without building,
downloading or writing anything (``kernel/build.sh hash TARGET``,
``kernel/rootfs/build.sh --hash``, ``firmware/build.sh emulated --hash``): this module
only asks them. A key that cannot be known (a script fails, the kernel is not built yet,
the twin's SSH keys are not made yet) is simply absent: pruning then protects the kind's
newest entry instead.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable
from pathlib import Path

from hil.build.firmware import DASHARO_TAG, BoardSettings
from hil.build.twin import FIRMWARE_SCRIPT, KERNEL_SCRIPT, ROOTFS_SCRIPT, TWIN_CMDLINE
from hil.cache.keys import cache_root
from hil.cache.usage import CurrentKeys
from hil.core.inventory import Inventory
from hil.core.runs import REPO_ROOT

log = logging.getLogger(__name__)

KERNEL_TARGETS = ("emulated", "board")
# gzip: what kernel/rootfs/build.sh builds by default (tests/rootfs); xz: the twin's initrd
ROOTFS_COMPRESSIONS = {"gzip": ".cpio.gz", "xz": ".cpio.xz"}
# firmware/build.sh base_inputs, relative to firmware/
FIRMWARE_BASE_INPUTS = ("coreboot/patches", "coreboot/drivers-wpp",
                        "coreboot/configs/qemu-q35.defconfig", "wpp/src", "wpp/include",
                        "build.sh")


def _script_key(argv: list[str]) -> str:
    proc = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT, check=False)
    out = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not out:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        err = next((ln.removeprefix("error: ") for ln in lines if ln.startswith("error:")),
                   lines[-1])
        raise RuntimeError(f"{Path(argv[0]).name} {' '.join(argv[1:])}: {err}")
    return out[-1].strip()


def firmware_keys(kernel: Path | None = None, initrd: Path | None = None,
                  cmdline: str = TWIN_CMDLINE) -> tuple[str, str]:
    """(base ROM key, ROM key) of ``firmware/build.sh emulated`` with this payload (none:
    the plain coreboot ROM), as the script itself computes them (``--hash``)."""
    argv = [str(FIRMWARE_SCRIPT), "emulated", "--hash"]
    if kernel is not None and initrd is not None:
        argv += ["--kernel", str(kernel), "--initrd", str(initrd), "--cmdline", cmdline]
    proc = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT, check=False)
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode != 0 or not {"base_hash", "hash"} <= found.keys():
        err = (proc.stderr.strip().splitlines() or ["no key printed"])[-1]
        raise RuntimeError(f"firmware/build.sh emulated --hash: {err}")
    return found["base_hash"], found["hash"]


def current_keys(root: Path | None = None,
                 dasharo_tags: Iterable[str] | None = None) -> CurrentKeys:
    """What the working tree hashes to, per cache kind (see `hil.cache.usage.KINDS`).

    The board's Dasharo tree and ROM are keyed by the tag the build takes, which is the
    inventory's ``dasharo_tag`` per board (`dasharo_tags`, see `inventory_dasharo_tags`);
    without an inventory, the build's default tag.
    """
    root = root or cache_root()
    keys = CurrentKeys()

    def attempt(kind: str, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            keys.unknown.setdefault(kind, str(e))
            log.debug("current %s key unknown: %s", kind, e)

    for target in KERNEL_TARGETS:
        attempt("kernel", lambda t=target: keys.add(
            "kernel", f"{t}-{_script_key([str(KERNEL_SCRIPT), 'hash', t])}"))
    for compress in ROOTFS_COMPRESSIONS:
        attempt("rootfs", lambda c=compress: keys.add(
            "rootfs", _script_key([str(ROOTFS_SCRIPT), "--hash", "--compress", c])))
    attempt("coreboot-src", lambda: keys.add("coreboot-src", _script_key(
        [str(FIRMWARE_SCRIPT.parent / "coreboot-source.sh"), "pin", "COREBOOT_VERSION"])))
    attempt("kernel-src", lambda: keys.add("kernel-src", _kernel_source_version()))
    attempt("kernel-source", lambda: keys.add("kernel-source", _kernel_source_version()))
    plain: list[tuple[str, str]] = []
    attempt("firmware-base", lambda: plain.append(firmware_keys()))
    for base_key, rom_key in plain:  # the payload-less ROM (tests/firmware)
        keys.add("firmware-base", base_key)
        keys.add("firmware", rom_key)
    for tag in sorted(set(dasharo_tags or ())) or [DASHARO_TAG]:
        for kind in ("firmware-board", "dasharo"):  # both keyed by the tag they build
            keys.add(kind, tag)
    keys.unknown["cbmem"] = "kernel/rootfs/build.sh prints no cbmem key (newest kept)"
    kernels = [root / "kernel" / "out" / n / "bzImage" for n in keys.of("kernel")]
    initrds = [root / "rootfs" / n / f"initramfs{ROOTFS_COMPRESSIONS['xz']}"
               for n in keys.of("rootfs")]
    kernel = next((k for k in kernels if k.is_file()), None)
    initrd = next((i for i in initrds if i.is_file()), None)
    if kernel and initrd:  # the twin's ROM
        attempt("firmware", lambda: keys.add("firmware", firmware_keys(kernel, initrd)[1]))
    else:
        keys.unknown.setdefault("firmware", "the twin's kernel or initramfs is not built yet")
    return keys


def inventory_dasharo_tags(inventory: Inventory) -> list[str]:
    """The Dasharo tag each board of `inventory` builds (`hil.build.firmware.BoardSettings`)."""
    return sorted({BoardSettings.of(b.firmware).tag for b in inventory.boards.values()
                   if b.firmware.get("kind") == "dasharo"})


def _kernel_source_version() -> str:
    """The source revision the kernel build uses (pinned, or its recorded fallback)."""
    return _script_key([str(KERNEL_SCRIPT.parent / "source.sh"), "version"])
