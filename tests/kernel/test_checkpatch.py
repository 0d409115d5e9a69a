"""The WPP driver passes the kernel's checkpatch.pl (Linux coding style), run on the host.

checkpatch.pl comes from the pinned Debian linux-source-6.1: the extracted tree in the
kernel build cache, or straight from the tarball kernel/source.sh fetches when no build ran
yet (never from an installed package).
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from hil.build.kernel import source_tarball
from hil.cache.keys import cache_root

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "kernel" / "wpp"
# Kernel I's files; all driver files must at least be free of errors.
STRICT = ("Kconfig", "Makefile", "wpp_internal.h", "wpp_main.c", "wpp_pci.c", "wpp_pcb.c",
          "wpp_pcb.h", "wpp_smi.c", "wpp_sysfs.c", "wpp_track.c", "wpp_trigger.c")
SCRIPTS = ("checkpatch.pl", "spelling.txt", "const_structs.checkpatch")
TOTAL = re.compile(r"total: (\d+) errors, (\d+) warnings")


@pytest.fixture(scope="module")
def checkpatch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tarball = source_tarball()
    tree = cache_root() / "kernel" / "src" / tarball.parent.name / "linux-source-6.1"
    if (tree / "scripts" / "checkpatch.pl").is_file():
        return tree / "scripts" / "checkpatch.pl"
    dest = tmp_path_factory.mktemp("checkpatch")
    with tarfile.open(tarball) as tar:
        for name in SCRIPTS:
            member = tar.getmember(f"linux-source-6.1/scripts/{name}")
            member.name = name
            tar.extract(member, dest)
    return dest / "checkpatch.pl"


def _run(checkpatch: Path, path: Path) -> tuple[int, int, str]:
    res = subprocess.run(["perl", str(checkpatch), "--no-tree", "--terse", "-f", str(path)],
                         capture_output=True, text=True)
    m = TOTAL.search(res.stdout)
    if m is None:  # --terse prints nothing for a clean file
        assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr
        return 0, 0, ""
    return int(m[1]), int(m[2]), res.stdout


def test_driver_files_are_known() -> None:
    assert all((DRIVER / name).is_file() for name in STRICT)


@pytest.mark.parametrize("name", STRICT)
def test_checkpatch_clean(checkpatch: Path, name: str) -> None:
    errors, warnings, out = _run(checkpatch, DRIVER / name)
    assert (errors, warnings) == (0, 0), out


def test_checkpatch_no_errors_anywhere(checkpatch: Path) -> None:
    for path in sorted(DRIVER.glob("*.[ch]")):
        errors, _warnings, out = _run(checkpatch, path)
        assert errors == 0, out
