"""Which QEMU accelerator the twin runs on: KVM when it offers SMM, else TCG, said once.

The twin's firmware is nothing without SMM: its SMI handler lives in TSEG. KVM is many
times faster than TCG, but not every host's KVM emulates SMM (nested or restricted
hypervisors refuse ``smm=on`` with "System Management Mode not supported by this
hypervisor"). So the choice is probed, not assumed: a QEMU with ``-accel kvm`` and
``q35,smm=on`` is started paused for a moment; if it is still alive, KVM has SMM. Whether
SMIs then really reach the handler is what the system suite's first tests check on every
boot. ``$WPP_TWIN_ACCEL`` (``auto``, ``kvm``, ``tcg``) overrides the probe.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
ENV = "WPP_TWIN_ACCEL"


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str  # why this one, in one line

    def qemu_args(self, smp: int) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm"]
        # several vCPUs under TCG: one host thread each, as on hardware
        return ["-accel", "tcg,thread=multi" if smp > 1 else "tcg"]


def _probe_kvm(timeout: float = 2.0) -> str | None:
    """None if KVM runs a q35 with SMM here, else why not (QEMU's own words)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is missing or not accessible"
    try:
        proc = subprocess.Popen(
            [QEMU, "-accel", "kvm", "-machine", "q35,smm=on", "-nodefaults", "-display",
             "none", "-S", "-monitor", "none", "-serial", "none"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as e:
        return f"cannot start {QEMU}: {e}"
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
        return None
    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
    lines = [ln.split(": ", 1)[-1] for ln in err.splitlines() if "warning" not in ln]
    return lines[-1].strip() if lines else f"QEMU exited with {proc.returncode}"


@functools.lru_cache(maxsize=1)
def choose() -> Accel:
    """The accelerator for this host (probed once per process)."""
    wanted = os.environ.get(ENV, "auto").strip().lower()
    if wanted == "tcg":
        return Accel("tcg", f"{ENV}=tcg")
    why = _probe_kvm()
    if why is None:
        return Accel("kvm", "KVM offers SMM here")
    if wanted == "kvm":
        log.warning("%s=kvm, but KVM cannot run the twin: %s", ENV, why)
    accel = Accel("tcg", f"KVM cannot run the twin: {why}")
    log.info("twin accelerator: tcg (%s)", accel.reason)
    return accel
