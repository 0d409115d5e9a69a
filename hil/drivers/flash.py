"""Flash firmware with flashrom, never without a verified backup and a way back.

A bad flash on the lab board means a trip to the lab with a SPI clip, so `Flashrom.write`
is defensive, in this order, and stops at the first problem:

1. Probe the chip (flashrom reads only the ID) and compare its size with the configured
   one and with the image. An image of the wrong size is refused before the chip is read
   or written. With ``ifd_region`` ("bios") flashrom needs a *full-chip* image anyway (it
   takes the region from the same offsets of the file), so the image must be chip-sized
   and must itself carry an Intel flash descriptor with that region.
2. Read the whole chip into ``backup-<time>.bin`` (+ ``.sha256``) in the run's artifact
   directory (`hil.core.runs.artifact_dir("flash")`) or a given directory, and verify the read
   with a second pass (``flashrom -v``): a flaky clip must not produce a garbage backup.
3. With ``ifd_region``: the region's base/limit in the chip's descriptor (from the backup)
   must equal those in the image's descriptor; flashrom uses the chip's layout, so a
   different layout would put the wrong bytes into the region.
4. Optionally ``--wp-disable --wp-range=0,0`` (clear the status-register protection *and*
   the protected range: disabling alone leaves the block-protect bits set), then ``-w``
   (with ``-N --ifd -i bios`` for a region). Success requires exit code 0 and ``VERIFIED``
   in the output. On any failure a `FlashError` carries the backup and the exact command
   that restores it.

The same argv runs locally or on the PiKVM/RTE over SSH (`hil.drivers.runner`); for a remote
runner the image is copied to a temp dir there and the backup brought back. If a remote
write fails, the remote temp dir (with the backup) is kept so the restore command given in
the error works as printed.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from hil.cache.keys import sha256_file
from hil.core.errors import ConfigError, HilError, MissingToolError
from hil.core.progress import Progress
from hil.core.runs import artifact_dir
from hil.drivers.ifd import REGION_NAMES, ifd_regions
from hil.drivers.runner import CommandResult, LocalRunner, Runner

_FOUND = re.compile(r'Found (.*?) flash chip "([^"]+)" \((\d+) kB, ([^)]*)\)(?: on (\S+?))?\.?$',
                    re.M)
_PROGRESS_LINE = re.compile(r"^(Found|Reading|Erasing|Verifying|Using region|Disabled|Warning)")


@dataclass(frozen=True)
class FlashromTool:
    path: str
    version: str
    host: str


@dataclass(frozen=True)
class ChipInfo:
    name: str
    vendor: str
    size: int
    output: str


@dataclass(frozen=True)
class Backup:
    """A full-chip read; `sha256_path` holds ``<hash>  <file name>`` (sha256sum format)."""

    path: Path
    sha256: str
    size: int

    @property
    def sha256_path(self) -> Path:
        return self.path.with_name(self.path.name + ".sha256")

    def check(self) -> bool:
        """True if the file still has the recorded hash."""
        return self.path.is_file() and sha256_file(self.path) == self.sha256


@dataclass(frozen=True)
class WriteResult:
    image: Path
    image_sha256: str
    backup: Backup
    command: str
    output: str
    duration: float


class FlashError(HilError):
    """A flash operation failed; `backup` and `restore_command` say how to get back."""

    def __init__(self, message: str, hint: str | None = None, *,
                 backup: Backup | None = None, restore_command: str | None = None) -> None:
        super().__init__(message, hint)
        self.backup = backup
        self.restore_command = restore_command


def _unique(path: Path) -> Path:
    """`path`, or `path` with -2, -3... so an earlier backup is never overwritten."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class Flashrom:
    """flashrom for one programmer/chip. All parameters explicit (no inventory lookups).

    programmer: flashrom's ``-p`` value, e.g. ``linux_spi:dev=/dev/spidev0.0,spispeed=16000``,
        ``internal``, ``dummy:emulate=VARIABLE_SIZE,size=16777216,image=/tmp/chip.bin``.
    chip_size: expected chip size in bytes (checked against the probe); None = as probed.
    ifd_region: None (whole chip) or a descriptor region name, normally ``"bios"``.
    wp_disable: run ``flashrom --wp-disable --wp-range=0,0`` before writing (fails on chips
        without write-protection support, and while the WP# pin is asserted).
    runner: where flashrom runs (`LocalRunner()` by default, `SshRunner(shell)` for a Pi).
    chip: flashrom ``-c`` name when the probe matches several chip definitions.
    backup_dir: where backups go (default: the run's ``flash`` artifact directory).
    """

    def __init__(
        self,
        programmer: str,
        *,
        chip_size: int | None = None,
        ifd_region: str | None = None,
        wp_disable: bool = False,
        runner: Runner | None = None,
        chip: str | None = None,
        flashrom: str = "flashrom",
        backup_dir: Path | str | None = None,
        timeout: float = 900.0,
        verify_backup: bool = True,
    ) -> None:
        if not programmer or any(c.isspace() for c in programmer):
            raise ConfigError(f"bad flashrom programmer '{programmer}'",
                              "e.g. linux_spi:dev=/dev/spidev0.0,spispeed=16000 or internal")
        if ifd_region is not None and ifd_region not in REGION_NAMES:
            raise ConfigError(f"unknown flash descriptor region '{ifd_region}'",
                              f"use one of: {', '.join(REGION_NAMES[:5])} (normally 'bios')")
        if chip_size is not None and chip_size <= 0:
            raise ConfigError(f"bad chip size {chip_size}")
        self.programmer = programmer
        self.chip_size = chip_size
        self.ifd_region = ifd_region
        self.wp_disable = wp_disable
        self.runner: Runner = runner if runner is not None else LocalRunner()
        self.chip = chip
        self.flashrom = flashrom
        self.backup_dir = Path(backup_dir) if backup_dir is not None else None
        self.timeout = timeout
        self.verify_backup = verify_backup
        self._tool: FlashromTool | None = None

    def __repr__(self) -> str:
        return (f"Flashrom({self.programmer!r} on {self.runner.label}, "
                f"region={self.ifd_region}, chip_size={self.chip_size})")

    # -- plumbing --------------------------------------------------------------------

    def tool(self) -> FlashromTool:
        """Locate flashrom (on the runner's host) and its version."""
        if self._tool is not None:
            return self._tool
        path = self.runner.which(self.flashrom)
        if path is None:
            err = MissingToolError(self.flashrom, "flashrom")
            if not isinstance(self.runner, LocalRunner):
                err.args = (f"required tool '{self.flashrom}' not found on {self.runner.label}",)
                err.hint = f"install it on {self.runner.label}: apt-get install flashrom"
            raise err
        res = self.runner.run([path, "--version"], timeout=60)
        m = re.search(r"flashrom\s+v?(\S+)", res.stdout)
        version = m.group(1) if m else "unknown"
        if version == "unknown":  # Debian's build does not embed its version
            pkg = self.runner.run(["dpkg-query", "-W", "-f=${Version}", "flashrom"], timeout=60)
            if pkg.ok and pkg.stdout.strip():
                version = f"{pkg.stdout.strip()} (Debian package)"
        self._tool = FlashromTool(path, version, self.runner.label)
        return self._tool

    def _base(self) -> list[str]:
        argv = [self.tool().path, "-p", self.programmer]
        if self.chip:
            argv += ["-c", self.chip]
        return argv

    def _region_args(self) -> list[str]:
        return ["-N", "--ifd", "-i", self.ifd_region] if self.ifd_region else []

    def _log_dir(self, override: Path | str | None) -> Path:
        d = Path(override) if override is not None else (self.backup_dir or artifact_dir("flash"))
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _run(self, argv: list[str], progress: Progress, log_dir: Path) -> CommandResult:
        def on_line(line: str) -> None:
            if _PROGRESS_LINE.match(line):
                progress.update(line.strip()[:100])

        res = self.runner.run(argv, timeout=self.timeout, on_line=on_line)
        with open(log_dir / "flashrom.log", "a", encoding="utf-8") as log:
            log.write(f"$ {self.runner.display(argv)}  # exit {res.exit_code}, "
                      f"{res.duration:.1f} s\n{res.output}\n")
        return res

    @staticmethod
    def _last_error(res: CommandResult) -> str:
        lines = [x.strip() for x in res.output.splitlines() if x.strip()]
        for pattern in (r"FAILED|Error|ERROR", r"fail|refus|not found|denied|unknown state"):
            for x in reversed(lines):
                if re.search(pattern, x, re.I):
                    return x
        return lines[-1] if lines else f"exit code {res.exit_code}"

    # -- operations ------------------------------------------------------------------

    def probe(self) -> ChipInfo:
        """Identify the chip (reads only its ID). Raises FlashError if none or ambiguous."""
        progress = Progress("flash probe")
        res = self._run(self._base(), progress, self._log_dir(None))
        found = _FOUND.findall(res.output)
        if res.ok and len(found) == 1:
            vendor, name, kb, _bus, _prog = found[0]
            info = ChipInfo(name, vendor, int(kb) * 1024, res.output)
            progress.done(f"{vendor} {name}, {info.size} bytes")
            if self.chip_size is not None and info.size != self.chip_size:
                raise FlashError(
                    f"chip {name} is {info.size} bytes, the configuration says {self.chip_size}",
                    "check the board's flash size in the inventory (or the clip/programmer)",
                )
            return info
        if "Multiple flash chip definitions" in res.output or len(found) > 1:
            names = sorted({f[1] for f in found})
            raise FlashError(f"several chip definitions match: {', '.join(names)}",
                             "set the chip name (flashrom -c) in the inventory")
        raise FlashError(
            f"no flash chip found with programmer '{self.programmer}' on {self.runner.label}: "
            f"{self._last_error(res)}",
            "check the clip/cable, the chip's power and the programmer string",
        )

    def read(self, dest: Path | str | None = None, backup_dir: Path | str | None = None,
             progress: Progress | None = None) -> Backup:
        """Read the whole chip into `dest` (default ``<backup dir>/backup-<time>.bin``)."""
        log_dir = self._log_dir(backup_dir)
        dest = Path(dest) if dest is not None else _unique(
            log_dir / f"backup-{time.strftime('%Y%m%d-%H%M%S')}.bin")
        dest.parent.mkdir(parents=True, exist_ok=True)
        own = progress is None
        progress = progress or Progress("flash read")
        tmp = self._temp_dir()
        try:
            target = str(dest) if tmp is None else f"{tmp}/backup.bin"
            progress.update("reading the chip")
            res = self._run([*self._base(), "-r", target], progress, log_dir)
            if not res.ok:
                raise FlashError(f"reading the chip failed: {self._last_error(res)}",
                                 f"see {log_dir / 'flashrom.log'}")
            if self.verify_backup:
                progress.update("verifying the read")
                res = self._run([*self._base(), "-v", target], progress, log_dir)
                if not (res.ok and "VERIFIED" in res.output):
                    raise FlashError(
                        f"the chip read back differently on a second pass: "
                        f"{self._last_error(res)}",
                        "the connection to the chip is unreliable (clip, wiring, spispeed)",
                    )
            if tmp is not None:
                self.runner.get(target, dest)
        finally:
            self._remove(tmp)
        backup = Backup(dest, sha256_file(dest), dest.stat().st_size)
        backup.sha256_path.write_text(f"{backup.sha256}  {dest.name}\n")
        if own:
            progress.done(f"read {backup.size} bytes to {dest} (sha256 {backup.sha256[:16]}...)")
        return backup

    def verify(self, image: Path | str, check: bool = True) -> bool:
        """Compare the chip (or its region) with `image`; raise FlashError if `check`."""
        image = Path(image)
        self._check_image_file(image)
        progress = Progress("flash verify")
        log_dir = self._log_dir(None)
        tmp = self._temp_dir()
        try:
            remote = self._stage(image, tmp)
            res = self._run([*self._base(), *self._region_args(), "-v", remote], progress,
                            log_dir)
        finally:
            self._remove(tmp)
        ok = res.ok and "VERIFIED" in res.output
        progress.done("VERIFIED" if ok else "differs")
        if not ok and check:
            raise FlashError(f"the chip does not match {image}: {self._last_error(res)}",
                             f"see {log_dir / 'flashrom.log'}")
        return ok

    def restore_argv(self, backup_path: str) -> list[str]:
        return [*self._base(), *self._region_args(), "-w", backup_path]

    def write(self, image: Path | str, backup_dir: Path | str | None = None) -> WriteResult:
        """Back up the chip, then write `image` (see the module doc for every check)."""
        image = Path(image)
        self._check_image_file(image)
        start = time.monotonic()
        progress = Progress("flash write")
        log_dir = self._log_dir(backup_dir)
        size = image.stat().st_size

        progress.update("probing the chip")
        chip = self.probe()
        self._check_size(image, size, chip.size)
        image_layout = self._image_region(image) if self.ifd_region else None

        progress.update("backing up the chip")
        backup = self.read(backup_dir=log_dir, progress=progress)
        if backup.size != chip.size:
            raise FlashError(f"backup has {backup.size} bytes, chip {chip.size}",
                             "the read is incomplete; nothing was written", backup=backup)
        if image_layout is not None:
            self._check_layouts(image, image_layout, backup)

        image_sha = sha256_file(image)
        tmp = self._temp_dir()
        keep_tmp = False
        local = tmp is None
        try:
            remote_image = self._stage(image, tmp)
            backup_on_host = str(backup.path)
            if tmp is not None:
                backup_on_host = f"{tmp}/{backup.path.name}"
                self.runner.put(backup.path, backup_on_host)
            restore = self.runner.display(self.restore_argv(backup_on_host))

            def fail(what: str, res: CommandResult | None) -> FlashError:
                detail = f": {self._last_error(res)}" if res is not None else ""
                where = "" if local else f" (local copy of the backup: {backup.path})"
                return FlashError(
                    f"{what}{detail}; backup kept at {backup_on_host}{where}",
                    f"restore with: {restore}", backup=backup, restore_command=restore,
                )

            if self.wp_disable:
                progress.update("disabling write protection")
                res = self._run([*self._base(), "--wp-disable", "--wp-range=0,0"], progress,
                                log_dir)
                if not res.ok:
                    keep_tmp = True
                    raise fail("disabling write protection failed (nothing written)", res)

            progress.update(f"writing {image.name}")
            argv = [*self._base(), *self._region_args(), "-w", remote_image]
            res = self._run(argv, progress, log_dir)
            verified = res.ok and "VERIFIED" in res.output
            if res.ok and not verified and "identical to the requested image" in res.output:
                # flashrom skips its verify pass when nothing changed: verify explicitly
                progress.update("content unchanged, verifying")
                res = self._run([*self._base(), *self._region_args(), "-v", remote_image],
                                progress, log_dir)
                verified = res.ok and "VERIFIED" in res.output
            if not verified:
                keep_tmp = True
                raise fail(f"writing {image.name} failed", res)
        finally:
            if not keep_tmp:
                self._remove(tmp)
        progress.done(f"wrote {image.name} ({size} bytes), VERIFIED; backup {backup.path}")
        return WriteResult(image, image_sha, backup, shlex.join(argv), res.output,
                           time.monotonic() - start)

    # -- checks ----------------------------------------------------------------------

    def _temp_dir(self) -> str | None:
        """A temp dir on the remote host; None when flashrom runs here (files used in place)."""
        return None if isinstance(self.runner, LocalRunner) else self.runner.make_temp_dir()

    def _remove(self, tmp: str | None) -> None:
        if tmp is not None:
            self.runner.remove_tree(tmp)

    def _stage(self, image: Path, tmp: str | None) -> str:
        """Path of `image` where flashrom runs (copied into `tmp` on a remote host)."""
        if tmp is None:
            return str(image.resolve())
        remote = f"{tmp}/{image.name}"
        self.runner.put(image, remote)
        return remote

    @staticmethod
    def _check_image_file(image: Path) -> None:
        if not image.is_file():
            # a missing input file is a usage error (exit 2), in every verb
            raise ConfigError(f"image '{image}' does not exist or is not a file",
                              "name the ROM file to write or verify")

    def _check_size(self, image: Path, size: int, chip_size: int) -> None:
        if size == chip_size:
            return
        if self.ifd_region:
            raise FlashError(
                f"image {image.name} has {size} bytes but the chip has {chip_size}; nothing "
                f"was written",
                f"writing the '{self.ifd_region}' region needs a full-chip image (flashrom "
                f"--ifd takes the region from the same offsets of the file)",
            )
        raise FlashError(
            f"image {image.name} has {size} bytes but the chip has {chip_size}; nothing was "
            f"written",
            "build/choose an image for this board's flash size",
        )

    def _image_region(self, image: Path) -> tuple[int, int]:
        with open(image, "rb") as f:
            regions = ifd_regions(f.read(0x1000))
        assert self.ifd_region is not None
        if regions is None:
            raise FlashError(f"image {image.name} has no Intel flash descriptor; nothing was "
                             f"written", "region writes need a full image with a descriptor")
        if self.ifd_region not in regions:
            raise FlashError(f"image {image.name} has no '{self.ifd_region}' region; nothing "
                             f"was written", f"its regions: {', '.join(regions)}")
        return regions[self.ifd_region]

    def _check_layouts(self, image: Path, image_region: tuple[int, int],
                       backup: Backup) -> None:
        with open(backup.path, "rb") as f:
            chip_regions = ifd_regions(f.read(0x1000))
        chip_region = (chip_regions or {}).get(self.ifd_region or "")
        if chip_region != image_region:
            def fmt(r: tuple[int, int] | None) -> str:
                return f"{r[0]:#x}-{r[1]:#x}" if r else "absent"

            raise FlashError(
                f"the '{self.ifd_region}' region is {fmt(chip_region)} on the chip but "
                f"{fmt(image_region)} in {image.name}; nothing was written",
                "the image was built for a different flash layout: flash the whole chip "
                "(ifd_region=None) only if you mean to replace the descriptor too",
                backup=backup,
            )
