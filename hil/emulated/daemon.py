"""The twin's daemon: ``python -m hil.emulated.daemon --state DIR``.

One detached process per twin serves the kvmd-compatible API on loopback and owns the
QEMU of every power-on, so the twin behaves like a board behind a PiKVM that outlives
the command that started it (`hil emulate up`, a pytest session). It stops on SIGTERM
or SIGINT, and takes its QEMU with it: explicitly on exit, and through PR_SET_PDEATHSIG
if it is killed outright.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading

from hil.core.errors import HilError
from hil.emulated.backend import QemuKvmdBackend
from hil.emulated.kvmd.server import KvmdServer
from hil.emulated.machine import Machine, ensure_files
from hil.emulated.serial_relay import SerialRelay
from hil.emulated.state import StateDir, kill_tracked, process_start_time, tracked_pid

log = logging.getLogger("hil.emulated.daemon")


def _owner_alive(owner: tuple[int, int] | None) -> bool:
    if owner is None:
        return True
    pid, started = owner
    return process_start_time(pid) == started


def serve(state: StateDir, owner: tuple[int, int] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, or until `owner` (pid, start time) is gone: a twin
    started for a test session must not outlive it even if pytest is killed."""
    config = state.read_config()
    marker = str(state.path)
    other = tracked_pid(state.daemon_pidfile, marker)
    if other is not None and other != os.getpid():
        log.error("another daemon (pid %d) already serves %s", other, state.path)
        return 1
    # a QEMU left behind by a crashed daemon of this very state dir
    if kill_tracked(state.qemu_pidfile, marker, signal.SIGKILL):
        log.warning("killed a stray QEMU of this twin")
    ensure_files(state, config)
    state.daemon_pidfile.write_text(f"{os.getpid()}\n")

    try:
        relay = SerialRelay(state.serial_socket, config.ports.serial, state.serial_log)
    except OSError as e:
        log.error("cannot serve the serial port 127.0.0.1:%d: %s", config.ports.serial, e)
        return 1
    machine = Machine(state, config)
    atexit.register(machine.shutdown)
    backend = QemuKvmdBackend(machine, relay_channel=config.relay_channel,
                              mains_cut_state=config.mains_cut_state)
    try:
        server = KvmdServer(
            backend,
            user=config.pikvm_user,
            password=state.read_password(),
            host="127.0.0.1",
            port=config.ports.kvmd,
        )
    except OSError as e:
        relay.close()
        log.error("cannot serve the kvmd API on 127.0.0.1:%d: %s", config.ports.kvmd, e)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("serving kvmd API at %s for %s (serial %d, ssh %d)", server.url, state.path,
             config.ports.serial, config.ports.ssh)
    try:
        while not stop.wait(1.0):
            if not _owner_alive(owner):
                log.info("owner process %d is gone: stopping", owner[0] if owner else 0)
                break
            machine.running  # noqa: B018 - reaps a QEMU that exited on its own (guest poweroff)
            # the server keeps every request record for tests; a daemon must not grow forever
            if len(server.requests) > 1000:
                del server.requests[:-100]
    finally:
        server.stop()
        machine.shutdown()
        relay.close()
        with contextlib.suppress(FileNotFoundError):
            state.daemon_pidfile.unlink()
        log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.emulated.daemon")
    parser.add_argument("--state", required=True, help="the twin's state directory")
    parser.add_argument("--owner", default=None, metavar="PID:START",
                        help="stop when this process (pid and /proc start time) is gone")
    args = parser.parse_args(argv)
    state = StateDir(args.state)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        owner = None
        if args.owner:
            pid, _, started = args.owner.partition(":")
            owner = (int(pid), int(started))
        return serve(state, owner)
    except HilError as e:
        log.error("%s%s", e, f" (hint: {e.hint})" if e.hint else "")
        return 1


if __name__ == "__main__":
    sys.exit(main())
