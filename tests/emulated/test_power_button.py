"""The twin's ACPI power button: a graceful `hil power off` is a clean shutdown.

A short ATX press through the kvmd API becomes QEMU's ACPI power-button event; the guest
(evdev + busybox acpid) shuts down cleanly and powers off, so the off completes well
before the hard-press fallback (`power.off_timeout_s`) would be used.
"""

from __future__ import annotations

import time

import pytest

from hil.core.target import Target

pytestmark = pytest.mark.twin


def test_graceful_off_is_a_clean_acpi_shutdown(target: Target) -> None:
    if not target.is_emulated:
        pytest.skip("on the board this is the OS's own power-button handling")
    target.ensure_booted()
    assert "acpid" in target.shell.run("ps", timeout=30).stdout, "acpid is not running"
    since = target.console.mark()
    start = time.monotonic()
    target.power.off()
    took = time.monotonic() - start
    assert not target.is_on()
    target.console.expect("wpp-guest: power button: shutting down", timeout=5, since=since)
    # the guest turned itself off: the long press after off_timeout_s was never needed
    assert took < target.board.power.off_timeout_s, f"off took {took:.1f} s"
