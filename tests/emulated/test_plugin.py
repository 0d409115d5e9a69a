"""The pytest plugin, run as a user would: a separate pytest process in another directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_pytest(tmp_path: Path, source: str, *args: str, timeout: float = 240) -> str:
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(source))
    env_runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-rs",
         "--inventory", str(REPO / "inventory.yaml"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HIL_RUNS_DIR": str(env_runs)},
    )
    return proc.stdout + proc.stderr


def test_board_only_is_skipped_on_the_twin_and_units_boot_nothing(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, """
        import pytest

        @pytest.mark.board_only
        def test_needs_board():
            raise AssertionError("must not run on the twin")

        def test_pure_logic():
            assert 1 + 1 == 2
    """, "--target=emulated", "--twin-rom", "/nonexistent.rom")
    assert "1 passed, 1 skipped" in out, out
    assert "board_only: needs the real board (target 'emulated' is the twin)" in out, out


def test_failed_boot_marks_target_broken_and_attaches_artifacts(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.rom"
    garbage.write_bytes(os.urandom(16 << 20))  # flashes fine, boots nothing: a bricked board
    out = run_pytest(tmp_path, """
        def test_first(target):
            pass

        def test_second(target):
            pass
    """, "--twin-rom", str(garbage), "--hil-boot-timeout", "6")
    assert "2 errors" in out or "2 error" in out, out
    # both tests fail with the cause of the first failure instead of waiting again
    # (the seconds are what is left of the 6 s after power-on, 5 or 6 depending on load)
    cause = r"emulated is unusable: boot failed: timed out after [56] s waiting for /coreboot"
    assert len(re.findall(cause, out)) >= 2, out
    assert "hil artifacts" in out and "serial:" in out, out


def test_twin_recovers_from_a_test_that_left_it_bricked(tmp_path: Path, twin_rom: Path) -> None:
    out = run_pytest(tmp_path, """
        import os

        def test_bricks_and_fails(target, tmp_path):
            bad = tmp_path / "bad.rom"
            bad.write_bytes(os.urandom(16 << 20))
            target.force_off()
            target.flash_write(bad)
            target.power_on()
            raise AssertionError("left the twin bricked")

        def test_next_gets_a_working_twin(target):
            assert target.shell.run("echo alive").stdout.strip() == "alive"
    """, "--twin-rom", str(twin_rom), timeout=400)
    assert "1 failed, 1 passed" in out, out
    assert "left the twin bricked" in out, out
