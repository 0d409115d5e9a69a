"""Every directory of ``hil/`` is a regular package that git keeps.

``hil/build/`` once had no ``__init__.py``: a ``.gitignore`` line meant for a top-level
``build/`` directory also matched it, so the file was never committed. Python then imported
it as a namespace package and nothing failed, but a wheel built with ``find_packages``
would have left the whole build layer out.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hil.core.runs import REPO_ROOT

HIL = REPO_ROOT / "hil"


def _package_dirs() -> list[Path]:
    return sorted({p.parent for p in HIL.rglob("*.py") if "__pycache__" not in p.parts})


def test_every_hil_directory_has_an_init() -> None:
    missing = [str(d.relative_to(REPO_ROOT)) for d in _package_dirs()
               if not (d / "__init__.py").is_file()]
    assert not missing, f"directories without __init__.py: {missing}"


def test_no_hil_source_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(REPO_ROOT)) for p in HIL.rglob("*.py")
             if "__pycache__" not in p.parts]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "", f"ignored by .gitignore: {proc.stdout.split()}"
