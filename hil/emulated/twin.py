"""Start, stop and inspect twins: ``up(board)``, ``down(board)``, ``status(board)``.

A twin runs in the background (`hil.emulated.daemon`), so it can be driven by hand with
every other hil verb through the inventory's fixed loopback endpoints, while tests start
their own twins on free ports in private state directories. `up` returns a copy of the
`Board` pointing at the twin's actual endpoints (kvmd URL, serial, SSH port, password
file, flash programmer), so the rest of the bench never needs to know it is a twin.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from hil.core.errors import ConfigError, HilError, MissingToolError
from hil.core.inventory import Board, Secret
from hil.core.runs import REPO_ROOT
from hil.core.timeout import Deadline
from hil.emulated.machine import ensure_files
from hil.emulated.state import (
    Ports,
    StateDir,
    TwinConfig,
    free_ports,
    kill_tracked,
    port_in_use,
    process_start_time,
    tracked_pid,
)

_started_here: dict[Path, Board] = {}


def state_dir(board: Board, override: Path | str | None = None) -> StateDir:
    """The state directory of `board`'s twin (`override` wins)."""
    if override is not None:
        return StateDir(override)
    if board.emulated is None:
        raise ConfigError(
            f"board '{board.name}' is not emulated", "use a board with an 'emulated' section"
        )
    return StateDir(board.emulated.state_dir)


def _board_ports(board: Board) -> Ports:
    """The fixed loopback ports the inventory gives the twin."""
    kvmd = urlparse(board.pikvm.url).port
    serial = urlparse(board.serial.url).port if board.serial.url.startswith("socket:") else None
    if not kvmd or not serial:
        raise ConfigError(
            f"board '{board.name}': the twin needs http://127.0.0.1:PORT as pikvm.url and "
            "socket://127.0.0.1:PORT as serial.url",
            "fix inventory.yaml or start the twin with free ports",
        )
    return Ports(kvmd=kvmd, serial=serial, ssh=board.ssh.port)


def chip_programmer(state: StateDir, chip_size: int) -> str:
    """flashrom's dummy programmer emulating the twin's chip file."""
    return f"dummy:emulate=VARIABLE_SIZE,size={chip_size},image={state.chip}"


def twin_board(board: Board, state: StateDir, config: TwinConfig | None = None) -> Board:
    """`board` pointed at the twin in `state` (its actual ports, password file, chip file)."""
    config = config or state.read_config()
    p = config.ports
    emulated = board.emulated
    if emulated is not None:
        emulated = dataclasses.replace(emulated, state_dir=state.path)
    return board.replace(
        pikvm=dataclasses.replace(
            board.pikvm,
            url=f"http://127.0.0.1:{p.kvmd}",
            user=config.pikvm_user,
            password=Secret("PiKVM password", None, state.password_file),
            verify=True,
            ca_file=None,
        ),
        serial=dataclasses.replace(board.serial, url=f"socket://127.0.0.1:{p.serial}"),
        ssh=dataclasses.replace(board.ssh, host="127.0.0.1", port=p.ssh),
        flash=dataclasses.replace(
            board.flash, programmer=chip_programmer(state, config.chip_size), runs_on="local"
        ),
        power_cut=dataclasses.replace(board.power_cut, channel=config.relay_channel),
        emulated=emulated,
    )


def _api_ready(url: str, user: str, password: str) -> bool:
    try:
        r = requests.get(
            f"{url}/api/auth/check",
            headers={"X-KVMD-User": user, "X-KVMD-Passwd": password},
            timeout=2,
        )
    except requests.RequestException:
        return False
    return r.status_code == 200


def _daemon_answers(sd: StateDir, twin_board: Board, grace_s: float = 5.0) -> bool:
    """Whether the daemon named in the state dir serves its API. A daemon that was just
    killed keeps its pid for a moment while it exits: it is waited for (False: start a
    new one), not reused, or the caller gets a URL nobody serves."""
    marker = str(sd.path)
    deadline = Deadline(grace_s)
    while (pid := tracked_pid(sd.daemon_pidfile, marker)) is not None:
        if _api_ready(twin_board.pikvm.url, twin_board.pikvm.user, sd.read_password()):
            return True
        if deadline.expired:
            raise HilError(
                f"the twin's daemon (pid {pid}) runs but its kvmd API at "
                f"{twin_board.pikvm.url} does not answer",
                f"see {sd.daemon_log}; stop it with 'hil emulate down', then "
                "'hil emulate up'",
            )
        deadline.sleep(0.2)
    return False


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def flash_chip(state: StateDir, image: Path, chip_size: int, timeout: float = 120) -> None:
    """Write `image` to the chip file with real flashrom (dummy programmer), twin off only."""
    if tracked_pid(state.qemu_pidfile, str(state.path)) is not None:
        raise HilError(
            "refusing to flash the twin while it is powered on",
            "power it off first (external SPI flashing happens in G3)",
        )
    image = Path(image)
    if not image.is_file():
        raise HilError(f"image {image} does not exist", "build it first")
    if image.stat().st_size != chip_size:
        raise HilError(
            f"image {image} is {image.stat().st_size} bytes, the twin's chip {chip_size}",
            "flash a full-chip image of the right size",
        )
    if shutil.which("flashrom") is None:
        raise MissingToolError("flashrom", "flashrom")
    proc = subprocess.run(
        ["flashrom", "-p", chip_programmer(state, chip_size), "-w", str(image)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0 or not _flashrom_ok(proc.stdout):
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise HilError(f"flashrom failed writing {image} to the twin: {tail}")


def up(
    board: Board,
    *,
    state: Path | str | None = None,
    use_free_ports: bool = False,
    rom: Path | None = None,
    timeout: float = 30.0,
    stop_at_exit: bool = False,
    extra_qemu_args: list[str] | None = None,
) -> Board:
    """Start `board`'s twin in the background (machine off) and return the board pointed at it.

    `state`: state directory (default: the inventory's). `use_free_ports`: pick unused
    loopback ports instead of the inventory's fixed ones (tests). `rom`: flash this image
    into the chip first. `stop_at_exit`: stop the twin when this Python process exits
    (atexit, and the daemon itself watches this process in case it is killed).
    Idempotent: a twin already running in `state` is reused (and reflashed only if off).
    """
    sd = state_dir(board, state)
    marker = str(sd.path)
    if tracked_pid(sd.daemon_pidfile, marker) is not None:
        config = sd.read_config()
        result = twin_board(board, sd, config)
        if _daemon_answers(sd, result):
            if rom is not None:
                flash_chip(sd, rom, config.chip_size)
            if stop_at_exit:
                _track(sd, result)
            return result

    emu = board.emulated
    ports = Ports(*free_ports(3)) if use_free_ports else _board_ports(board)
    if not use_free_ports:
        for name, port in dataclasses.asdict(ports).items():
            if port_in_use(port):
                raise HilError(
                    f"port {port} ({name}) on 127.0.0.1 is already in use",
                    "another twin running? check 'hil emulate status' / 'hil emulate down'",
                )
    config = TwinConfig(
        memory_mib=emu.memory_mib if emu else 2048,
        smp=emu.smp if emu else 1,
        pdev_size=emu.pdev_size if emu else 512 << 20,
        chip_size=board.flash.chip_size,
        relay_channel=board.power_cut.channel or "relay",
        mains_cut_state=board.power_cut.cut_state,
        pikvm_user=board.pikvm.user,
        ports=ports,
        extra_qemu_args=list(extra_qemu_args or []),
    )
    sd.create()
    sd.write_config(config)
    env_pw = os.environ.get(board.pikvm.password.env or "") if board.pikvm.password.env else None
    sd.write_password(env_pw or secrets.token_urlsafe(18))
    ensure_files(sd, config)
    if rom is not None:
        flash_chip(sd, rom, config.chip_size)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "hil.emulated.daemon", "--state", str(sd.path)]
    if stop_at_exit:  # also when this process dies without running atexit (SIGKILL)
        argv += ["--owner", f"{os.getpid()}:{process_start_time(os.getpid())}"]
    with open(sd.daemon_log, "ab") as logf:
        proc = subprocess.Popen(
            argv,
            cwd=sd.path,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    result = twin_board(board, sd, config)
    if stop_at_exit:
        _track(sd, result)
    deadline = Deadline(timeout)
    password = sd.read_password()
    while not _api_ready(result.pikvm.url, config.pikvm_user, password):
        if proc.poll() is not None:
            raise HilError(
                f"the twin's daemon exited (code {proc.returncode}): {_log_tail(sd.daemon_log)}",
                f"see {sd.daemon_log}",
            )
        if deadline.expired:
            down(board, state=sd.path)
            raise HilError(
                f"the twin's kvmd API did not come up within {timeout:.0f} s",
                f"see {sd.daemon_log}",
            )
        deadline.sleep(0.1)
    return result


def _track(sd: StateDir, board: Board) -> None:
    if not _started_here:
        atexit.register(_stop_started)
    _started_here[sd.path] = board


def _stop_started() -> None:
    for path, board in list(_started_here.items()):
        with contextlib.suppress(Exception):
            down(board, state=path)


def down(board: Board, *, state: Path | str | None = None) -> bool:
    """Stop the twin (daemon and QEMU). Returns False if nothing was running."""
    sd = state_dir(board, state)
    marker = str(sd.path)
    stopped = kill_tracked(sd.daemon_pidfile, marker, signal.SIGTERM, timeout=15)
    # the daemon takes QEMU along; anything still named in qemu.pid is a stray
    stopped = kill_tracked(sd.qemu_pidfile, marker, signal.SIGKILL) or stopped
    with contextlib.suppress(FileNotFoundError, HilError):
        sd.qmp_socket.unlink()
    _started_here.pop(sd.path, None)
    return stopped


def status(board: Board, *, state: Path | str | None = None) -> dict[str, Any]:
    """What runs where: daemon, machine power, mains relay, endpoints and files."""
    sd = state_dir(board, state)
    marker = str(sd.path)
    daemon = tracked_pid(sd.daemon_pidfile, marker)
    qemu = tracked_pid(sd.qemu_pidfile, marker)
    info: dict[str, Any] = {
        "state_dir": str(sd.path),
        "daemon_pid": daemon,
        "running": daemon is not None,
        "qemu_pid": qemu,
        "powered": qemu is not None,
    }
    try:
        config = sd.read_config()
    except ConfigError:
        info["configured"] = False
        return info
    info["configured"] = True
    p = config.ports
    info["endpoints"] = {
        "pikvm": f"http://127.0.0.1:{p.kvmd}",
        "serial": f"socket://127.0.0.1:{p.serial}",
        "ssh": f"127.0.0.1:{p.ssh}",
    }
    accel_file = sd.path / "accel"
    accel = accel_file.read_text().strip().split(" ", 1) if accel_file.is_file() else []
    info["machine"] = {
        "memory_mib": config.memory_mib,
        "smp": config.smp,
        "pdev_size": config.pdev_size,
        "chip_size": config.chip_size,
        "accel": accel[0] if accel else None,
        "accel_reason": accel[1] if len(accel) > 1 else None,
    }
    info["files"] = {
        "chip": str(sd.chip),
        "pdev": str(sd.pdev),
        "serial_log": str(sd.serial_log),
        "debugcon_log": str(sd.debugcon_log),
        "password_file": str(sd.password_file),
    }
    if daemon is not None:
        try:
            auth = {"X-KVMD-User": config.pikvm_user, "X-KVMD-Passwd": sd.read_password()}
            gpio = requests.get(f"http://127.0.0.1:{p.kvmd}/api/gpio", headers=auth, timeout=2)
            outs = gpio.json()["result"]["state"]["outputs"]
            relay = outs.get(config.relay_channel, {}).get("state")
            info["mains"] = relay is not None and relay != config.mains_cut_state
        except (requests.RequestException, KeyError, ValueError, OSError):
            info["mains"] = None
    return info


def _flashrom_ok(stdout: str) -> bool:
    """flashrom verified the write, or found the chip already holding the image."""
    return "VERIFIED" in stdout or "Chip content is identical to the requested image" in stdout
