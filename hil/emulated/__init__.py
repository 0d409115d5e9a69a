"""The emulated board ("twin"): QEMU q35 + coreboot behind loopback copies of the lab's parts.

`twin.up(board)` / `twin.down(board)` / `twin.status(board)` run a twin in the background
(`daemon`: the kvmd-compatible API from `hil.emulated.kvmd.server` with the QEMU-backed
`backend.QemuKvmdBackend` and kvmd's MSD rules from `kvmd.msd`, the ser2net-like
`serial_relay`, and the `machine` that starts a fresh QEMU from the chip file at every
power-on; `kvmd.simulated` is the test double, not used by the twin). `state` describes
the per-instance state directory; `qmp` is the monitor client; `keys` maps PiKVM key names
to QEMU's; `private` starts a private twin for one run.
"""
