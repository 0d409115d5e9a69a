"""The registry of subcommand modules, in the order `hil --help` lists them."""

from hil.cli import (
    bench_cmd,
    build_cmd,
    cache_cmd,
    console_cmd,
    cycle_cmd,
    emulate_cmd,
    flash_cmd,
    inventory_cmd,
    lease_cmd,
    logs_cmd,
    power_cmd,
    recover_cmd,
    screenshot_cmd,
    snapshot_cmd,
    ssh_cmd,
    transfer_cmd,
)

MODULES = [
    inventory_cmd,
    power_cmd,
    flash_cmd,
    console_cmd,
    ssh_cmd,
    transfer_cmd,
    logs_cmd,
    screenshot_cmd,
    snapshot_cmd,
    build_cmd,
    cache_cmd,
    emulate_cmd,
    cycle_cmd,
    bench_cmd,
    lease_cmd,
    recover_cmd,
]
