"""Build each part of a board (PiKVM, power, console, shell, flash, cbmem) from the inventory.

The parts themselves take plain values (URLs, secrets as strings, paths), so they are
testable without an inventory; this is the one place that maps inventory sections onto
them. The twin and the real board go through the same functions: they differ only in
inventory values (an emulated board's dynamic endpoints come from its state directory).
"""

from __future__ import annotations

from pathlib import Path

from hil.core.errors import ConfigError
from hil.core.inventory import Board
from hil.core.runs import artifact_dir
from hil.drivers.console import Console
from hil.drivers.flash import Flashrom
from hil.drivers.pikvm import PiKvmClient
from hil.drivers.plug import TasmotaPlug
from hil.drivers.power import BoardPower, MainsSwitch, PikvmAtx, PikvmGpioRelay, PlugMains
from hil.drivers.runner import LocalRunner, Runner, SshRunner
from hil.drivers.shell import Shell


def resolve(board: Board) -> Board:
    """The board with every endpoint concrete.

    An emulated board's flash programmer is ``dummy`` in the inventory: the chip file
    lives in the running twin's state directory, so it is filled in from there.
    """
    if not board.is_emulated or board.flash.programmer != "dummy":
        return board
    from hil.emulated import twin  # the real board never needs the emulator

    state = twin.state_dir(board)
    if not state.config_file.is_file():
        raise ConfigError(
            f"the twin '{board.name}' has never been started (no {state.config_file})",
            "start it with 'hil emulate up'",
        )
    return twin.twin_board(board, state)


def make_pikvm(board: Board) -> PiKvmClient:
    cfg = board.pikvm
    return PiKvmClient(
        cfg.url,
        cfg.user,
        cfg.password.get(),
        totp_secret=cfg.totp_secret.get_optional(),
        verify=cfg.verify,
        ca_file=cfg.ca_file,
    )


def make_mains(board: Board, pikvm: PiKvmClient | None = None) -> MainsSwitch:
    cut = board.power_cut
    if cut.kind == "pikvm-gpio":
        assert cut.channel is not None  # the loader requires it for this kind
        return PikvmGpioRelay(pikvm or make_pikvm(board), cut.channel,
                              cut_state=cut.cut_state)
    if cut.kind == "http-plug":
        assert cut.url is not None
        return PlugMains(TasmotaPlug(cut.url, user=cut.user, password=cut.password.get_optional()))
    if cut.kind == "qemu":
        # The twin's relay is a kvmd GPIO channel on its loopback API, like the board's.
        return PikvmGpioRelay(pikvm or make_pikvm(board), cut.channel or "relay",
                              cut_state=cut.cut_state)
    raise ConfigError(f"board '{board.name}': unknown power_cut kind {cut.kind!r}")


def make_power(board: Board, pikvm: PiKvmClient | None = None) -> BoardPower:
    pikvm = pikvm or make_pikvm(board)
    return BoardPower(
        atx=PikvmAtx(pikvm, off_timeout=board.power.off_timeout_s),
        mains=make_mains(board, pikvm),
        hold_s=board.power_cut.hold_s,
        name=board.name,
    )


def make_console(board: Board, log_dir: Path | None = None, name: str = "serial") -> Console:
    """A started console on the board's serial port, logging into the run directory."""
    return Console(
        board.serial.url,
        log_dir or artifact_dir(board.name),
        name=name,
        baudrate=board.serial.baudrate,
    ).start()


def make_shell(board: Board) -> Shell:
    ssh = board.ssh
    return Shell(
        ssh.host,
        ssh.port,
        ssh.user,
        key_file=ssh.key_file,
        password=ssh.password.get() if ssh.key_file is None else None,
    )


def flash_host_runner(board: Board) -> Runner:
    """Commands on the host that holds the board's SPI programmer (this one, or over SSH)."""
    cfg = board.flash
    if not cfg.remote_host:
        return LocalRunner()
    user, _, host = cfg.remote_host.rpartition("@")
    host, _, port = host.partition(":")
    shell = Shell(
        host,
        int(port or 22),
        user or "root",
        key_file=cfg.ssh_key_file,
        password=cfg.ssh_password.get() if cfg.ssh_key_file is None else None,
    )
    return SshRunner(shell)


def make_flash(board: Board, backup_dir: Path | None = None) -> Flashrom:
    """flashrom for the board's chip, run locally or on the programmer host over SSH."""
    cfg = board.flash
    runner = flash_host_runner(board)
    return Flashrom(
        cfg.programmer,
        chip_size=cfg.chip_size,
        ifd_region=cfg.ifd_region,
        wp_disable=cfg.wp_disable,
        runner=runner,
        backup_dir=backup_dir,
    )
