"""System suite, part 1: the board boots our firmware and the SMI transport answers.

Target-agnostic: `pytest --target=<board>` runs the same checks on the twin and on the
lab board (only inventory values differ).
"""

from __future__ import annotations

import re
from typing import Any

from hil.drivers.cbmem import read_cbmem


def _stats(target: Any, path: str) -> dict[str, list[str]]:
    text = target.shell.run(f"cat {path}", timeout=30).stdout
    return {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.split()}


def test_firmware_reserves_the_wpp_region_and_logs_it(target: Any) -> None:
    log = read_cbmem(target.shell, last_boot=True)
    assert not log.malformed, log.malformed
    reserved = log.named("region_reserved")
    assert reserved, "no 'wpp: region_reserved' line in this boot's cbmem -c"
    base, size = int(reserved[-1]["base"]), int(reserved[-1]["size"])
    wpp = target.board.wpp
    assert (base, size) == (wpp.mailbox_addr, wpp.region_size)
    handoff = log.named("handoff")
    assert handoff and handoff[-1]["status"] == 0, "ramstage did not hand SMM the RAM map"


def test_region_is_reserved_in_iomem(target: Any) -> None:
    wpp = target.board.wpp
    end = wpp.mailbox_addr + wpp.region_size - 1
    iomem = target.shell.run("cat /proc/iomem", timeout=30).stdout
    line = f"{wpp.mailbox_addr:08x}-{end:08x} : Reserved"
    assert re.search(rf"^{line}$", iomem, re.M | re.I), iomem


def test_smi_transport_answers_debug_events(target: Any) -> None:
    """Toggle the firmware's debug flag twice through /dev/wpp-trigger (magic 50): each
    write is one SMI whose status and sequence the kernel checks; the firmware's own
    counters, read back with another SMI, must follow, and the log must show both."""
    before = _stats(target, "/sys/kernel/wpp/stats")
    fw_before = _stats(target, "/sys/kernel/wpp/fw_counters")
    for _ in range(2):
        target.shell.run("echo 50 > /dev/wpp-trigger", timeout=30)
    after = _stats(target, "/sys/kernel/wpp/stats")
    fw_after = _stats(target, "/sys/kernel/wpp/fw_counters")
    assert int(after["debug"][0]) == int(before["debug"][0]) + 2  # calls
    assert int(after["debug"][1]) == int(before["debug"][1])  # errors
    assert after["last_status"] == ["0"] and after["no_answer"] == before["no_answer"]
    assert int(fw_after["debug"][0]) == int(fw_before["debug"][0]) + 2
    assert fw_after["debug_flags"] == fw_before["debug_flags"]  # toggled back
    toggles = [e for e in read_cbmem(target.shell, last_boot=True).named("debug")
               if e.get("op") == "toggle"]
    assert len(toggles) >= 2 and all(e["status"] == 0 for e in toggles[-2:])
