"""``hil bench`` options: profiles, --only/--reps, and bad input rejected before any boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.bench import runner
from hil.cli import bench_cmd
from hil.cli.main import build_parser, main


def _args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["bench", *argv])


def test_quick_profile_with_only_and_reps() -> None:
    cfg = bench_cmd._config(_args("--quick", "--only", "redis", "--only", "synthetic",
                                  "--only", "redis", "--reps", "3"))
    assert cfg.reps == 3 and cfg.benches == ("redis", "synthetic")
    assert cfg.redis_requests == runner.QUICK.redis_requests
    full = bench_cmd._config(_args())
    assert full == runner.FULL and full.benches == runner.BENCHES


def test_bad_options_exit_2_with_a_one_line_cause(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    assert main(["bench", "--reps", "0"]) == 2
    assert "error: --reps must be at least 1 (got 0)" in capsys.readouterr().err
    assert main(["bench", "--rom", str(tmp_path / "missing.rom")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "hint: pass a built twin ROM" in err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--only", "everything"])
    assert exc.value.code == 2
