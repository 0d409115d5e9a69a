"""pytest plugin (entry point ``hil``): ``--target``, ``--inventory`` and the board fixtures.

``pytest --target=emulated`` (the default) runs board tests against a twin started for
the session on free loopback ports in a private state directory; ``--target=msi-z690``
runs the same tests against the lab board named in the inventory. Nothing is built or
booted unless a collected test asks for the `target` (or `wpp`) fixture, so unit tests
stay fast.

* `target` (session): a booted `hil.core.target.Target`. Before each test using it, the
  plugin fails fast if an earlier boot broke the target and boots it again if a test
  left it off.
* `wpp`: `hil.wpp.session.WppSession` for persistence tests (start a tracked program,
  trigger, power-cut, boot, read ``wpp:`` events, recreate).
* marker ``board_only``: skipped on the twin, with the reason shown.
* a failing test that used the target gets its artifacts (serial, debugcon, cbmem,
  dmesg, screenshot) captured into the run directory; the paths appear in the report.
* tests using the target get a default timeout (``--hil-test-timeout``, pytest-timeout),
  and the twin's ROM is built before the first test so the build is not charged to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_TARGET_FIXTURES = ("target", "wpp")
_state: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "wpp-hil board under test")
    group.addoption("--target", action="store", default=None,
                    help="board to test: 'emulated' (default: the inventory's default board) "
                         "or a board name from the inventory")
    group.addoption("--inventory", action="store", default=None,
                    help="inventory file (default: $HIL_INVENTORY or the repo's inventory.yaml)")
    group.addoption("--twin-rom", action="store", default=None,
                    help="flash this ROM into the twin instead of building it")
    group.addoption("--hil-attach", action="store_true", default=False,
                    help="use the twin started by 'hil emulate up' (its ROM as it is) instead "
                         "of a private twin on free ports")
    group.addoption("--hil-boot-timeout", action="store", type=float, default=240.0,
                    help="seconds a boot may take (power on to SSH)")
    group.addoption("--hil-test-timeout", action="store", type=float, default=600.0,
                    help="default per-test timeout for tests using the target")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "board_only: needs the real board; skipped on the twin with the reason shown"
    )
    config.addinivalue_line("markers", "twin: boots an emulated board")
    config.addinivalue_line(
        "markers", "hil_no_autoboot: do not boot the target before this test (it may be off)"
    )


def _board(config: pytest.Config) -> Any:
    if "board" not in _state:
        from hil.core.inventory import load

        inv = load(config.getoption("--inventory"))
        _state["board"] = inv.board(config.getoption("--target"))
    return _state["board"]


def _uses_target(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(f in names for f in _TARGET_FIXTURES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_board = [i for i in items if _uses_target(i) or i.get_closest_marker("board_only")]
    if not needs_board:
        return
    board = _board(config)
    timeout = config.getoption("--hil-test-timeout")
    for item in items:
        if item.get_closest_marker("board_only") and board.emulated is not None:
            item.add_marker(pytest.mark.skip(
                reason=f"board_only: needs the real board (target '{board.name}' is the twin)"))
        elif _uses_target(item) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which board, and for the twin which accelerator, the run is about."""
    try:
        board = _board(config)
    except Exception as e:  # a broken inventory shows up in the tests that need it
        return [f"hil target: unknown ({e})"]
    lines = [f"hil target: {board.name}"]
    if board.emulated is not None:
        from hil.emulated.accel import choose

        accel = choose()
        lines.append(f"twin accelerator: {accel.name} ({accel.reason})")
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the twin's ROM before any test runs (not charged to the first test's timeout)."""
    config = session.config
    if config.getoption("collectonly") or not any(_uses_target(i) for i in session.items):
        return
    runnable = [i for i in session.items
                if _uses_target(i) and not i.get_closest_marker("skip")]
    attach = config.getoption("--hil-attach")
    if runnable and _board(config).emulated is not None and not attach:
        from hil.core.errors import HilError

        # a failed build is reported by every test that needs the twin, not as an
        # INTERNALERROR of the whole session
        with contextlib.suppress(HilError):
            _twin_rom(config)


def _twin_rom(config: pytest.Config) -> Path:
    """The ROM for the twin; a build failure is remembered and re-raised, not retried."""
    if "rom_error" in _state:
        raise _state["rom_error"]
    if "rom" not in _state:
        given = config.getoption("--twin-rom")
        try:
            if given:
                _state["rom"] = Path(given).resolve()
            else:
                from hil.build.twin import twin_rom

                _state["rom"] = twin_rom()
        except Exception as e:
            _state["rom_error"] = e
            raise
    return _state["rom"]


@pytest.fixture(scope="session")
def hil_board(pytestconfig: pytest.Config) -> Any:
    """The inventory `Board` selected with ``--target`` (nothing started)."""
    return _board(pytestconfig)


@pytest.fixture(scope="session")
def twin_rom(pytestconfig: pytest.Config) -> Path:
    """The twin's ROM (``--twin-rom`` or built/reused by `hil.build.twin.twin_rom`)."""
    return _twin_rom(pytestconfig)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The board under test, booted; for the twin a private instance on free ports."""
    from hil.core.target import Target

    board = _board(pytestconfig)
    boot_timeout = pytestconfig.getoption("--hil-boot-timeout")
    with contextlib.ExitStack() as stack:
        if board.emulated is None or pytestconfig.getoption("--hil-attach"):
            # a board others may drive too: hold its lease for the session (a private twin
            # is ours alone); a run that already holds it passes it down in HIL_LEASE
            from hil.lab.lease import held

            stack.enter_context(held(board, "pytest " + " ".join(pytestconfig.args)[:60]))
        if board.emulated is not None and pytestconfig.getoption("--hil-attach"):
            from hil.core.parts import resolve

            tgt = Target(resolve(board))
            stack.callback(tgt.close)
        elif board.emulated is not None:
            from hil.emulated.private import private_twin

            tgt = stack.enter_context(private_twin(board, _twin_rom(pytestconfig), "pytest",
                                                   flash_through_flashrom=True))
        else:
            tgt = Target(board)
            stack.callback(tgt.close)
        _state["target"] = tgt
        stack.callback(_state.pop, "target", None)
        if not tgt.broken:
            with contextlib.suppress(Exception):  # recorded in tgt.broken; tests fail fast
                tgt.ensure_booted(boot_timeout)
        yield tgt


@pytest.fixture(autouse=True)
def _hil_target_ready(request: pytest.FixtureRequest) -> None:
    """Fail fast on a broken target; boot it again if a previous test left it off."""
    if not any(f in request.fixturenames for f in _TARGET_FIXTURES):
        return
    tgt = request.getfixturevalue("target")
    tgt.check_usable()
    if request.node.get_closest_marker("hil_no_autoboot") is None:
        try:
            _restore_twin_rom(request.config, tgt)
            tgt.ensure_booted(request.config.getoption("--hil-boot-timeout"))
        except Exception as e:
            tgt.mark_broken(f"boot failed: {e}")
            raise


def _restore_twin_rom(config: pytest.Config, tgt: Any) -> None:
    """A private twin whose chip no longer holds the session ROM (a test flashed another
    image and failed before restoring it) gets the session ROM back while off."""
    rom = _state.get("rom")
    if rom is None or not tgt.is_emulated or config.getoption("--hil-attach"):
        return
    from hil.cache.keys import sha256_file

    if _state.get("rom_sha") is None:
        _state["rom_sha"] = sha256_file(rom)
    if sha256_file(tgt.twin.chip) == _state["rom_sha"]:
        return
    tgt.force_off()
    tgt.flash_write(rom)


@pytest.fixture
def wpp(target: Any) -> Iterator[Any]:
    """A `WppSession` on the target (its kernel must support WPP, else the test errors with
    that cause); programs it started are stopped afterwards."""
    from hil.wpp.session import WppSession

    session = WppSession(target)
    session.require()
    try:
        yield session
    finally:
        session.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if not report.failed or report.when not in ("setup", "call") or not _uses_target(item):
        return
    tgt = _state.get("target")
    if tgt is None:
        return
    from hil.core.runs import artifact_dir

    try:
        paths = tgt.capture(item.nodeid, dest=artifact_dir(item.nodeid))
    except Exception as e:  # never hide the test's own failure
        report.sections.append(("hil artifacts", f"capture failed: {type(e).__name__}: {e}"))
        return
    lines = [f"{label}: {path}" for label, path in sorted(paths.items())]
    report.sections.append(("hil artifacts", "\n".join(lines) or "(none captured)"))
