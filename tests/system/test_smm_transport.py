"""The WPP SMM handler on a booted board, driven from user space by wpp-smi-probe.

The probe (firmware/tests/guest/wpp-smi-probe.c, built into the guest image) fills the
mailbox at the WPP region and writes the event to port 0xb2, like the kernel driver.
Runs on the twin (``--target=emulated``) and on the lab board alike.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from hil.drivers.cbmem import parse_log

pytestmark = pytest.mark.twin

LINE = re.compile(r"^wpp-probe (.*)$")
LOG_LINE = re.compile(r"^wpp: [a-z_]+( [a-z_0-9]+=\S+)*$")


def probe(target: Any, *cmds: str) -> dict[str, dict[str, str]]:
    res = target.shell.run("wpp-smi-probe " + " ".join(cmds), timeout=60, check=False)
    assert res.exit_code == 0, f"wpp-smi-probe exit {res.exit_code}: {res.stdout}"
    out: dict[str, dict[str, str]] = {}
    for line in res.stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            kv = dict(p.split("=", 1) for p in m.group(1).split() if "=" in p)
            out[kv["cmd"]] = kv
    return out


def smram_of_this_boot(target: Any) -> tuple[int, int]:
    """SMRAM as the firmware recorded it at the handoff ('wpp: guard ... smram=B:S'):
    TSEG moves with the RAM size, so no constant stands in for it."""
    log = parse_log(target.shell.run("cbmem -c", timeout=60).stdout)
    guard = [e for e in log.events if e.name == "guard" and e.get("status") == 0]
    assert guard, "no 'wpp: guard status=0' line in cbmem -c: the handoff recorded no layout"
    base, size = (int(x, 16) for x in str(guard[-1]["smram"]).split(":"))
    assert size > 0
    return base, size


def test_events_answered_with_statuses(target: Any) -> None:
    r = probe(target, "init", "dump", "selftest", "toggle", "0", "counters", "bad-mailbox",
              "bad-event", "region-page", "read-ro", "write-meta", "64",
              "wpp-hil", "read-meta", "64", "7")
    for cmd, kv in r.items():
        assert kv["seq_ack"] == kv["seq"], f"{cmd} not answered by the SMI handler: {kv}"
    assert r["init"]["status"] == "0" and int(r["init"]["r0"]) >= 1
    assert r["dump"]["status"] == "0"
    assert r["selftest"]["status"] == "0", "persistent device self-test failed"
    assert int(r["selftest"]["r1"]) >= 16 << 20  # device size reported
    assert r["counters"]["status"] == "0"
    assert int(r["counters"]["generation"]) == int(r["init"]["r0"])
    assert r["bad-mailbox"]["status_name"] == "bad_mailbox"
    assert r["bad-event"]["status_name"] == "bad_mailbox"
    assert r["region-page"]["status_name"] == "bad_addr"
    assert r["read-ro"]["status_name"] == "read_only"
    assert r["write-meta"]["status"] == "0"
    assert r["read-meta"]["data"] == "wpp-hil"


def test_smram_page_refused_by_the_smram_check(target: Any) -> None:
    """ADD_PAGE of SMRAM's first and last page (as this boot recorded it) is refused by
    the handler's SMRAM branch (reason=smram in its log line), not by the OS-RAM range
    check that would refuse it too; a page of the region by the region branch."""
    base, size = smram_of_this_boot(target)
    out = target.shell.run(f"wpp-smi-probe init smram-page {base:#x} smram-page "
                           f"{base + size - 4096:#x} region-page", timeout=60, check=False)
    assert out.exit_code == 0, out.stdout
    lines = [dict(p.split("=", 1) for p in m.group(1).split() if "=" in p)
             for ln in out.stdout.splitlines() if (m := LINE.match(ln.strip()))]
    assert [ln["status_name"] for ln in lines] == ["ok", "bad_addr", "bad_addr", "bad_addr"]
    log = parse_log(target.shell.run("cbmem -c", timeout=60).stdout).events
    # the probe numbers its requests from 1: ours are the last three refusals logged
    refused = [e for e in log if e.name == "add_page" and e.get("status") == 8][-3:]
    assert [e["seq"] for e in refused] == [int(ln["seq"]) for ln in lines[1:]], refused
    assert [e.get("reason") for e in refused] == ["smram", "smram", "region"], refused


def test_cbmem_console_shows_wpp_lines(target: Any) -> None:
    probe(target, "init", "selftest")
    res = target.shell.run("cbmem -c", timeout=60, check=False)
    assert res.exit_code == 0, res.stdout
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip().startswith("wpp:")]
    assert any(ln.startswith("wpp: handoff status=0 ") for ln in lines), lines[-20:]
    assert any(ln.startswith("wpp: guard status=0 ") and " recorded=1" in ln
               for ln in lines), lines[-20:]
    assert any(ln.startswith("wpp: init status=0 ") for ln in lines), lines[-20:]
    assert any(ln.startswith("wpp: selftest status=0 ") for ln in lines), lines[-20:]
    assert any(ln.startswith("wpp: region_reserved base=0x10000000 ") for ln in lines)
    bad = [ln for ln in lines if not LOG_LINE.match(ln)]
    assert not bad, f"log lines not in 'wpp: <event> key=value' form: {bad[:5]}"


def test_persist_restore_roundtrip_through_smm(target: Any) -> None:
    """2000 of the probe's own pages: PAGE_BATCH, PERSIST to the device, RESTORE,
    GET_PAGES of each compared with the original contents, CONSUME."""
    res = target.shell.run("wpp-smi-probe roundtrip 2000", timeout=300, check=False)
    assert res.exit_code == 0, res.stdout
    lines = {}
    for line in res.stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            kv = dict(p.split("=", 1) for p in m.group(1).split() if "=" in p)
            lines[kv["cmd"]] = kv
    assert lines["roundtrip-batch"]["status"] == "0" and lines["roundtrip-batch"]["r0"] == "2000"
    assert lines["roundtrip-batch"]["no_pfn"] == "0"
    persist = lines["roundtrip-persist"]
    assert persist["status"] == "0" and persist["r0"] == "2000"
    assert persist["r1"] == str(2000 * 4096)
    restore = lines["roundtrip-restore"]
    assert restore["status"] == "0" and restore["r1"] == "2000"
    done = lines["roundtrip-consume"]
    assert done["status"] == "0"
    assert (done["pages"], done["ok"], done["bad"]) == ("2000", "2000", "0")
    # GET_PAGES' dest_phys form, straight into each page's own frame (above 4 GiB too,
    # when the frames lie there: high_pages of them)
    assert (done["dest_ok"], done["dest_bad"]) == ("2000", "0"), done
    print(f"roundtrip: {done['high_pages']} of 2000 frames above 4 GiB")
    log = target.shell.run("cbmem -c", timeout=60, check=False).stdout
    persist_lines = [ln for ln in log.splitlines() if ln.startswith("wpp: persist status=0 ")]
    assert persist_lines and "pages=2000 " in persist_lines[-1]
    assert re.search(r" time_us=\d+", persist_lines[-1])
