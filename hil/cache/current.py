"""Which build-cache entries the current working tree maps to (the ones in use).

The build scripts own the cache keys. Where a script can print its key without building
(``kernel/build.sh hash TARGET``, ``kernel/rootfs/build.sh --hash``) it is asked; the
firmware script has no such mode, so its two keys are recomputed here exactly as
``firmware/build.sh emulated`` computes them (tests/unit/test_cache.py runs the script's
own hash functions against this code to catch drift). A key that cannot be known (a
script fails, the kernel is not built yet) is simply absent: pruning then protects the
kind's newest entry instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from hil.build.firmware import DASHARO_TAG
from hil.build.twin import FIRMWARE_SCRIPT, KERNEL_SCRIPT, ROOTFS_SCRIPT, TWIN_CMDLINE
from hil.cache.keys import cache_root, sha256_file
from hil.cache.usage import CurrentKeys
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
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{Path(argv[0]).name} {' '.join(argv[1:])}: {err}")
    return out[-1].strip()


def _sh_var_default(script: Path, name: str) -> str:
    """The default of ``NAME="${NAME:-value}"`` in a shell script (what build.sh seds out)."""
    m = re.search(rf'^{name}="\$\{{{name}:-(.*)\}}"$', script.read_text(), re.M)
    if not m:
        raise RuntimeError(f"{script.name} has no {name} default")
    return m.group(1)


def _gcc_version() -> str:
    proc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("gcc --version failed")
    return proc.stdout.splitlines()[0]


def hash_tree(base: Path, inputs: Iterable[Path], trailer: str) -> str:
    """firmware/build.sh's hash_tree: sha256 over each file's path (relative to `base`) and
    content hash, in C-locale order of the full paths, then the `trailer` lines."""
    files: list[str] = []
    for p in inputs:
        if p.is_dir():
            for d, _, names in os.walk(p):
                files += [os.path.join(d, n) for n in names
                          if Path(d, n).is_file() and not Path(d, n).is_symlink()]
        elif p.is_file():
            files.append(str(p))
    h = hashlib.sha256()
    for f in sorted(files, key=os.fsencode):
        rel = f[len(str(base)) + 1:] if f.startswith(f"{base}/") else f
        h.update(os.fsencode(rel) + b"\0")
        h.update(sha256_file(Path(f)).encode() + b"\n")
    h.update(trailer.encode())
    return h.hexdigest()


def firmware_base_key(firmware_dir: Path | None = None, gcc: str | None = None) -> str:
    """The base ROM key of ``firmware/build.sh emulated`` for the tree at `firmware_dir`."""
    here = firmware_dir or FIRMWARE_SCRIPT.parent
    source_sh = here / "coreboot-source.sh"
    trailer = "".join(f"{line}\n" for line in (
        f"coreboot={_sh_var_default(source_sh, 'COREBOOT_VERSION')}",
        f"orig={_sh_var_default(source_sh, 'COREBOOT_ORIG_SHA256')}",
        f"gcc={gcc if gcc is not None else _gcc_version()}",
    ))
    return hash_tree(here, [here / p for p in FIRMWARE_BASE_INPUTS], trailer)


def firmware_rom_key(base_key: str, kernel: Path | None = None, initrd: Path | None = None,
                     cmdline: str = TWIN_CMDLINE) -> str:
    """The ROM key of ``firmware/build.sh emulated --kernel K --initrd I --cmdline C``, or of
    the plain coreboot ROM without a payload (``firmware/build.sh emulated``)."""
    if kernel is None or initrd is None:
        lines: tuple[str, ...] = (f"base={base_key}", "nopayload")
    else:
        lines = (f"base={base_key}", f"kernel={sha256_file(kernel)}",
                 f"initrd={sha256_file(initrd)}", f"cmdline={cmdline}")
    return hashlib.sha256("".join(f"{x}\n" for x in lines).encode()).hexdigest()


def current_keys(root: Path | None = None) -> CurrentKeys:
    """What the working tree hashes to, per cache kind (see `hil.cache.usage.KINDS`)."""
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
    attempt("coreboot-src", lambda: keys.add("coreboot-src", _sh_var_default(
        FIRMWARE_SCRIPT.parent / "coreboot-source.sh", "COREBOOT_VERSION")))
    attempt("kernel-src", lambda: keys.add("kernel-src", _kernel_source_version()))
    attempt("kernel-source", lambda: keys.add("kernel-source", _kernel_source_version()))
    attempt("firmware-base", lambda: keys.add("firmware-base", firmware_base_key()))
    for kind in ("firmware-board", "dasharo"):  # both keyed by the pinned Dasharo tag
        keys.add(kind, DASHARO_TAG)
    keys.unknown["cbmem"] = "kernel/rootfs/build.sh prints no cbmem key (newest kept)"
    base = keys.of("firmware-base")
    kernels = [root / "kernel" / "out" / n / "bzImage" for n in keys.of("kernel")]
    initrds = [root / "rootfs" / n / f"initramfs{ROOTFS_COMPRESSIONS['xz']}"
               for n in keys.of("rootfs")]
    kernel = next((k for k in kernels if k.is_file()), None)
    initrd = next((i for i in initrds if i.is_file()), None)
    for b in base:  # the payload-less ROM (tests/firmware) and the twin's
        keys.add("firmware", firmware_rom_key(b))
        if kernel and initrd:
            attempt("firmware", lambda: keys.add(
                "firmware", firmware_rom_key(b, kernel, initrd)))  # noqa: B023 - called now
        else:
            keys.unknown.setdefault("firmware", "the twin's kernel or initramfs is not built yet")
    return keys


def _kernel_source_version() -> str:
    """The source revision the kernel build uses (pinned, or its recorded fallback)."""
    return _script_key([str(KERNEL_SCRIPT.parent / "source.sh"), "version"])
