"""Copying files to and from a board's OS over SFTP (``hil put`` / ``hil get``).

Tests and users bring their own binaries to the board without rebuilding its image. The
copy goes through the board's `hil.drivers.shell.Shell` (fabric's SFTP: the twin's dropbear runs
OpenSSH's sftp-server), and every copy is checked end to end: the remote side's sha256sum
must equal the local file's, so a truncated copy is an error, not a surprise later.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path

from hil.cache.keys import sha256_file
from hil.core.errors import ConfigError, HilError
from hil.drivers.shell import Shell


@dataclass(frozen=True)
class Copied:
    source: str
    destination: str
    size: int
    sha256: str


def _remote_sha256(shell: Shell, path: str) -> str:
    res = shell.run(f"sha256sum {shlex.quote(path)}", timeout=120, check=False)
    words = res.stdout.split()
    if res.exit_code != 0 or not words:
        raise HilError(f"cannot checksum {shell.destination}:{path}: "
                       f"{res.stderr.strip() or 'sha256sum failed'}")
    return words[0]


def _remote_is_dir(shell: Shell, path: str) -> bool:
    return shell.run(f"test -d {shlex.quote(path)}", timeout=30, check=False).exit_code == 0


def put(shell: Shell, source: Path, destination: str) -> Copied:
    """Copy a local file to the board; `destination` may name a directory there."""
    if not source.is_file():
        raise ConfigError(f"cannot copy '{source}': no such file",
                          "name an existing local file")
    if destination.endswith("/") or _remote_is_dir(shell, destination):
        destination = posixpath.join(destination, source.name)
    shell.put(source, destination)
    want, got = sha256_file(source), _remote_sha256(shell, destination)
    if want != got:
        raise HilError(f"{shell.destination}:{destination} differs from '{source}' after the "
                       f"copy (sha256 {got[:12]} != {want[:12]})", "check free space there")
    return Copied(str(source), destination, source.stat().st_size, want)


def get(shell: Shell, source: str, destination: Path) -> Copied:
    """Copy a file from the board; `destination` may be a local directory."""
    if destination.is_dir():
        destination = destination / posixpath.basename(source)
    if not destination.parent.is_dir():
        raise ConfigError(f"cannot write '{destination}': no directory "
                          f"'{destination.parent}'", "create it first")
    want = _remote_sha256(shell, source)
    shell.get(source, destination)
    got = sha256_file(destination)
    if want != got:
        raise HilError(f"'{destination}' differs from {shell.destination}:{source} after the "
                       f"copy (sha256 {got[:12]} != {want[:12]})", "try again")
    return Copied(source, str(destination), destination.stat().st_size, got)
