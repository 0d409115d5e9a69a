"""The twin's daemon and kvmd API without a bootable ROM (an erased chip is enough).

Powering on an erased chip starts QEMU exactly like a bricked board: power LED on,
nothing else. That is all these tests need, so they run without building anything.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from hil.core.errors import HilError
from hil.core.inventory import Board, load
from hil.core.timeout import wait_for
from hil.drivers.pikvm import PiKvmAuthRejectedError, PiKvmClient, PiKvmUnavailableError
from hil.drivers.power import BoardPower, PikvmAtx, PikvmGpioRelay, PowerError, PowerState
from hil.emulated import twin
from hil.emulated.state import StateDir, free_ports, process_matches, tracked_pid


@pytest.fixture
def board() -> Board:
    return load().board("emulated")


@pytest.fixture
def running(board: Board, tmp_path) -> Iterator[tuple[Board, StateDir]]:
    tb = twin.up(board, state=tmp_path / "twin", use_free_ports=True, stop_at_exit=True)
    try:
        yield tb, StateDir(tmp_path / "twin")
    finally:
        twin.down(tb)


def client_for(tb: Board) -> PiKvmClient:
    return PiKvmClient(tb.pikvm.url, tb.pikvm.user, tb.pikvm.password.get(), retries=0)


def test_up_status_down(board: Board, running: tuple[Board, StateDir]) -> None:
    tb, sd = running
    st = twin.status(board, state=sd.path)
    assert st["running"] and not st["powered"] and st["mains"] is True
    assert st["endpoints"]["pikvm"] == tb.pikvm.url
    assert tb.flash.programmer == (
        f"dummy:emulate=VARIABLE_SIZE,size={16 << 20},image={sd.chip}")
    assert (sd.password_file.stat().st_mode & 0o777) == 0o600
    assert sd.read_password() not in sd.daemon_log.read_text()
    # idempotent: a second up reuses the running daemon
    again = twin.up(board, state=sd.path, use_free_ports=True)
    assert again.pikvm.url == tb.pikvm.url
    daemon = st["daemon_pid"]
    assert twin.down(tb)
    assert not process_matches(daemon, str(sd.path))
    assert twin.status(board, state=sd.path)["running"] is False
    assert twin.down(tb) is False


def test_wrong_password_is_rejected(running: tuple[Board, StateDir]) -> None:
    tb, _ = running
    with pytest.raises(PiKvmAuthRejectedError):
        PiKvmClient(tb.pikvm.url, tb.pikvm.user, "wrong", retries=0).atx_state()


def test_atx_and_mains_relay_drive_qemu(running: tuple[Board, StateDir]) -> None:
    tb, sd = running
    c = client_for(tb)
    power = BoardPower(PikvmAtx(c, on_timeout=10, off_timeout=3), PikvmGpioRelay(c, "relay"),
                       hold_s=0.2, show_progress=False)
    assert power.state() is PowerState.OFF
    with pytest.raises(PiKvmUnavailableError):
        c.snapshot_bytes()  # no video while off, as kvmd
    assert c.snapshot_bytes(allow_offline=True)[:2] == b"\xff\xd8"

    power.on()
    qemu = tracked_pid(sd.qemu_pidfile, str(sd.path))
    assert qemu is not None and power.state() is PowerState.ON
    assert c.snapshot_bytes()[:2] == b"\xff\xd8"

    power.cut(stay_cut=True)  # mains off: QEMU SIGKILLed at once
    assert not process_matches(qemu, str(sd.path))
    assert power.state() is PowerState.CUT
    c.atx_click("power")  # a board without mains ignores the button
    assert not c.atx_state().power_led
    with pytest.raises(PowerError, match="mains power is cut"):
        power.on()
    power.restore()
    assert power.state() is PowerState.OFF  # stays off until powered on, like the board
    power.on()
    power.reset()
    assert c.atx_state().power_led
    power.off()  # no OS to answer the ACPI button: forced off after off_timeout
    assert power.state() is PowerState.OFF
    assert tracked_pid(sd.qemu_pidfile, str(sd.path)) is None


def test_killed_daemon_takes_qemu_along(running: tuple[Board, StateDir]) -> None:
    tb, sd = running
    client_for(tb).atx_power("on")
    qemu = wait_for(lambda: tracked_pid(sd.qemu_pidfile, str(sd.path)), 10, "QEMU to start")
    daemon = tracked_pid(sd.daemon_pidfile, str(sd.path))
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: not process_matches(qemu, str(sd.path)), 10, "QEMU to die with its daemon")
    # and a new up on the same state dir starts cleanly
    tb2 = twin.up(tb, state=sd.path, use_free_ports=True)
    assert client_for(tb2).atx_state().power_led is False


def test_hung_daemon_is_a_clear_error_not_reused(running: tuple[Board, StateDir]) -> None:
    """A daemon that is alive but does not serve its API (stopped here with SIGSTOP) is
    not handed out as a running twin: 'up' names it and how to get rid of it."""
    tb, sd = running
    daemon = tracked_pid(sd.daemon_pidfile, str(sd.path))
    assert daemon is not None
    os.kill(daemon, signal.SIGSTOP)
    try:
        with pytest.raises(HilError, match=rf"daemon \(pid {daemon}\) runs but its kvmd API"
                                           ) as err:
            twin.up(tb, state=sd.path, use_free_ports=True)
        assert "hil emulate down" in (err.value.hint or "")
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert client_for(tb).atx_state().power_led is False  # the same daemon, answering again


def test_fixed_port_in_use_is_a_clear_error(board: Board, tmp_path) -> None:
    """Only the port this test holds is busy: the other fixed ports are moved off the
    inventory's, which a twin started by hand ('hil emulate up') may be holding."""
    kvmd_port, serial_port = free_ports(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        busy = board.replace(
            pikvm=dataclasses.replace(board.pikvm, url=f"http://127.0.0.1:{kvmd_port}"),
            serial=dataclasses.replace(board.serial, url=f"socket://127.0.0.1:{serial_port}"),
            ssh=dataclasses.replace(board.ssh, port=port),
        )
        with pytest.raises(HilError, match=rf"port {port} \(ssh\) .* already in use"):
            twin.up(busy, state=tmp_path / "t")


def test_two_twins_side_by_side(board: Board, tmp_path) -> None:
    a = twin.up(board, state=tmp_path / "a", use_free_ports=True, stop_at_exit=True)
    b = twin.up(board, state=tmp_path / "b", use_free_ports=True, stop_at_exit=True)
    try:
        assert len({a.pikvm.url, b.pikvm.url}) == 2
        assert len({a.serial.url, b.serial.url, a.ssh.port, b.ssh.port}) == 4
        ca, cb = client_for(a), client_for(b)
        ca.atx_power("on")
        assert ca.atx_state().power_led and not cb.atx_state().power_led
        cb.gpio_switch("relay", True)  # cutting b's mains leaves a running
        time.sleep(0.2)
        assert ca.atx_state().power_led
        assert twin.status(a, state=tmp_path / "a")["mains"] is True
        assert twin.status(b, state=tmp_path / "b")["mains"] is False
        twin.down(a)
        assert cb.atx_state().power_led is False  # b still answers after a is gone
    finally:
        twin.down(a)
        twin.down(b)


def test_twin_of_a_killed_session_stops_itself(tmp_path) -> None:
    """pytest killed outright (no atexit) must not leave its twin running."""
    import subprocess
    import sys

    state = tmp_path / "orphan"
    script = (
        "import sys, time\n"
        "from hil.emulated import twin\n"
        "from hil.core.inventory import load\n"
        "from hil.drivers.pikvm import PiKvmClient\n"
        f"tb = twin.up(load().board('emulated'), state={str(state)!r}, use_free_ports=True,\n"
        "              stop_at_exit=True)\n"
        "PiKvmClient(tb.pikvm.url, tb.pikvm.user, tb.pikvm.password.get()).atx_power('on')\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "up"
        sd = StateDir(state)
        daemon = tracked_pid(sd.daemon_pidfile, str(sd.path))
        qemu = tracked_pid(sd.qemu_pidfile, str(sd.path))
        assert daemon is not None and qemu is not None
        owner.kill()
        owner.wait(10)
        wait_for(lambda: not process_matches(daemon, str(sd.path)), 15, "the daemon to stop")
        assert not process_matches(qemu, str(sd.path))
    finally:
        if owner.poll() is None:
            owner.kill()
        twin.down(load().board("emulated"), state=state)


def test_twin_is_wired_like_the_inventory_says(board: Board, tmp_path) -> None:
    """power_cut.cut_state false: the relay channel must be on for mains. The twin's
    relay follows it, and the bench's parts (from the same inventory) read it right."""
    from hil.core import parts

    reverse = board.replace(power_cut=dataclasses.replace(board.power_cut, cut_state=False))
    tb = twin.up(reverse, state=tmp_path / "rev", use_free_ports=True, stop_at_exit=True)
    try:
        c = client_for(tb)
        assert c.gpio_state().channels["relay"].state is True  # mains on at start
        assert twin.status(reverse, state=tmp_path / "rev")["mains"] is True
        power = parts.make_power(tb, c)
        power.show_progress = False
        assert power.state() is PowerState.OFF  # not "cut"
        power.on()
        assert power.state() is PowerState.ON
        power.cut(hold_s=0.2)  # QEMU killed, mains back on
        assert power.state() is PowerState.OFF
        assert c.gpio_state().channels["relay"].state is True
        assert twin.status(reverse, state=tmp_path / "rev")["mains"] is True
    finally:
        twin.down(tb)
