"""System suite: files reach the board and come back over SFTP (`hil put` / `hil get`).

Tests and users bring their own programs to the board without rebuilding its image: a
script is copied over, runs there, and its output file is copied back byte-exact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hil.drivers import transfer

SCRIPT = """#!/bin/sh
# made on the host, copied by hil put, run on the board
echo "ran on $(uname -n) with $# args: $*" > "$1"
"""


def test_put_run_get_round_trip(target: Any, tmp_path: Path) -> None:
    shell = target.shell
    shell.run("mkdir -p /data/hil-copy && rm -f /data/hil-copy/*", timeout=30)
    script = tmp_path / "hello.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(2 * 1024 * 1024 + 17))  # not a multiple of any block size

    sent = transfer.put(shell, script, "/data/hil-copy/")
    assert sent.destination == "/data/hil-copy/hello.sh"
    transfer.put(shell, blob, "/data/hil-copy/blob.bin")
    res = shell.run("/data/hil-copy/hello.sh /data/hil-copy/out.txt a b", timeout=30)
    assert res.exit_code == 0, res.stderr

    back = tmp_path / "back"
    back.mkdir()
    out = transfer.get(shell, "/data/hil-copy/out.txt", back)
    assert Path(out.destination).read_text().endswith("with 3 args: /data/hil-copy/out.txt a b\n")
    copy = transfer.get(shell, "/data/hil-copy/blob.bin", back / "blob.back")
    assert copy.size == blob.stat().st_size
    assert (back / "blob.back").read_bytes() == blob.read_bytes()
    shell.run("rm -rf /data/hil-copy", timeout=30)
