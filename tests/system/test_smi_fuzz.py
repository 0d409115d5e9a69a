"""The SMI handler under thousands of random mailbox commands from the guest.

``wpp-smi-fuzz`` (firmware/tests/guest/wpp-smi-fuzz.c, built into the guest image) sends
random events 0xa0-0xac (and the boot-time handoff 0xad) with random payloads, header
junk and lengths, and physical addresses pointing into SMRAM (TSEG), the WPP region,
reserved and MMIO ranges and beyond RAM, from a seed printed here (set
``WPP_FUZZ_SEED`` to replay one). The test checks that the machine stays up, every
command was answered with a known status, no forbidden address or junk was accepted, the
handler still works afterwards, and the persistent device is unchanged (the host file on
the twin, hashed before and after; the completion marker's consumed flag is the one byte
range a CONSUME may legally change). PERSIST, which rewrites the device, is left out.
The board is switched off afterwards: the fuzzer's log lines wrapped the CBMEM console.
A deterministic sweep offers every page of the e820-reserved ranges (firmware tables,
CBMEM; the first fuzzer runs found CBMEM pages accepted, fixed in a02ab79).

A refusal proves the address check only when nothing else could refuse: most random
GET_PAGES fail on state or bounds first. So the fuzzer first makes a known snapshot
(``--prepare``, before the persistent device is hashed) and one command in eight is a
strict pair (INIT + ADD_PAGE, or RESTORE FORCE of that snapshot + an in-bounds GET_PAGES)
with a forbidden address that must answer exactly BAD_ADDR. SMRAM is not a constant: it
is read from the firmware's ``wpp: guard ... smram=BASE:SIZE`` line of this boot, and on
the twin the handler's log must show the SMRAM branch itself refusing (``reason=smram``),
not the RAM-range check behind it.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from counter_probe import kill_tracked
from twin_only import inspect_cli, optional_twin, sha256_ranges

from hil.drivers.cbmem import parse_log
from hil.wpp import snapshot

COUNT = 5000
KNOWN_PAGES = 8  # pages of the fuzzer's --prepare snapshot
EVENTS = ("init", "add_region", "remove_region", "add_page", "remove_page", "page_batch",
          "write_data", "read_data", "persist", "restore", "get_pages", "debug", "consume",
          "handoff")
BAD_KERNEL = re.compile(r"Oops|BUG:|Kernel panic|general protection|segfault", re.I)


def _kv(line: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


def smram_of_this_boot(target: Any) -> str:
    """SMRAM as the firmware recorded it at the handoff ('wpp: guard ... smram=B:S'):
    TSEG moves with the RAM size, so no constant stands in for it."""
    log = parse_log(target.shell.run("cbmem -c", timeout=60).stdout)
    guard = [e for e in log.events if e.name == "guard" and e.get("status") == 0]
    assert guard, "no 'wpp: guard status=0' line in cbmem -c: the handoff recorded no layout"
    smram = str(guard[-1]["smram"])
    assert re.fullmatch(r"0x[0-9a-f]+:0x[0-9a-f]+", smram) and not smram.endswith(":0x0"), smram
    return smram


@pytest.fixture(scope="module")
def fuzz(target: Any) -> Iterator[dict[str, Any]]:
    """One fuzzer run (module-scoped: its findings feed several checks)."""
    target.ensure_booted()
    kill_tracked(target)  # the fuzzer shares the mailbox with the kernel driver
    seed = int(os.environ.get("WPP_FUZZ_SEED") or random.SystemRandom().randrange(1, 2**32))
    print(f"wpp-smi-fuzz seed {seed} (replay: WPP_FUZZ_SEED={seed})")
    smram = smram_of_this_boot(target)
    # a known snapshot for the strict probes, made before the device is hashed
    prep = target.shell.run(f"wpp-smi-fuzz --prepare --smram {smram}", timeout=120,
                            check=False)
    assert prep.exit_code == 0, prep.stdout + prep.stderr
    twin = optional_twin(target, "hashing the persistent-device file around the fuzzer")
    marker = (snapshot.MARKER_OFFSET, snapshot.MARKER_SIZE)
    before = sha256_ranges(twin.pdev, [marker]) if twin else None
    verdict = inspect_cli(twin.pdev, no_pages=True)[1]["verdict"] if twin else None
    dmesg_before = len(BAD_KERNEL.findall(target.shell.run("dmesg", timeout=30).stdout))
    sweep = target.shell.run(f"wpp-smi-fuzz --sweep-reserved --smram {smram}", timeout=300,
                             check=False)
    print(sweep.stdout.strip())
    debugcon_before = twin.debugcon.stat().st_size if twin else 0
    res = target.shell.run(f"wpp-smi-fuzz --seed {seed} --count {COUNT} --smram {smram} "
                           f"--known-pages {KNOWN_PAGES}", timeout=600, check=False)
    print(res.stdout[-3000:])
    yield {
        "seed": seed, "res": res, "sweep": sweep, "twin": twin, "marker": marker,
        "pdev_before": before, "verdict_before": verdict, "dmesg_before": dmesg_before,
        "smram": smram, "debugcon_before": debugcon_before,
    }
    # thousands of 'wpp:' error lines wrapped this boot's CBMEM console (its boot-time
    # lines are gone) and the handler's state is random: the next test gets a fresh boot
    target.force_off()


def test_every_command_answered_nothing_forbidden_accepted(fuzz: dict[str, Any]) -> None:
    res = fuzz["res"]
    violations = [ln for ln in res.stdout.splitlines() if ln.startswith("wpp-fuzz violation")]
    assert not violations, f"seed {fuzz['seed']}: {violations[:10]}"
    assert res.exit_code == 0, f"seed {fuzz['seed']}: exit {res.exit_code}: {res.stderr}"
    done = [ln for ln in res.stdout.splitlines() if ln.startswith("wpp-fuzz done ")]
    assert done, res.stdout[-2000:]
    kv = _kv(done[-1])
    assert int(kv["commands"]) == COUNT and kv["unanswered"] == "0"
    assert int(kv["answered"]) + int(kv["handoffs"]) == COUNT
    statuses = [int(x) for x in kv["statuses"].split(",")]
    assert statuses[-1] == 0, "a status outside enum wpp_status"
    assert statuses[0] > 0 and sum(statuses) == int(kv["answered"])
    events = dict(zip(EVENTS, (int(x) for x in kv["events"].split(",")), strict=True))
    assert events["persist"] == 0
    assert all(n > 0 for name, n in events.items() if name not in ("persist", "handoff"))
    # forbidden addresses of every class were sent, and all were refused
    assert int(kv["forbidden"]) > COUNT // 20
    assert kv["forbidden_refused"] == kv["forbidden"]
    classes = ("region", "mmio", "beyond_ram", "e820_reserved", "smram")
    for cls in classes:
        accepted, sent = (int(x) for x in kv[cls].split("/"))
        assert sent > 0 and accepted == 0, f"{cls}: {kv[cls]}"
    # the strict pairs: the address check itself refused, with BAD_ADDR, in every class
    for cls in classes:
        bad_addr, sent = (int(x) for x in kv[f"strict_{cls}"].split("/"))
        assert sent > 0 and bad_addr == sent, f"strict {cls}: {kv[f'strict_{cls}']}"
    start = [ln for ln in res.stdout.splitlines() if ln.startswith("wpp-fuzz start ")]
    assert start and _kv(start[-1])["smram"] == fuzz["smram"], "fuzzed another SMRAM range"


def test_addresses_above_4gib(fuzz: dict[str, Any]) -> None:
    """Above 4 GiB the policy is the same as below: holes and addresses past the end of RAM
    answer exactly BAD_ADDR (strict pairs), System RAM up there is accepted (INIT +
    ADD_PAGE of a high RAM page must be OK). On a target without RAM above 4 GiB only the
    first half can be sent; with it (ram_end above 4 GiB) both must have been."""
    out = fuzz["res"].stdout.splitlines()
    done = [ln for ln in out if ln.startswith("wpp-fuzz done ")]
    start = [ln for ln in out if ln.startswith("wpp-fuzz start ")]
    assert done and start, fuzz["res"].stdout[-2000:]
    kv = _kv(done[-1])
    bad_addr, sent = (int(x) for x in kv["strict_high_bad"].split("/"))
    assert sent > 0 and bad_addr == sent, f"strict_high_bad={kv['strict_high_bad']}"
    ok, sent = (int(x) for x in kv["strict_high_ram"].split("/"))
    assert ok == sent, f"high RAM refused: strict_high_ram={kv['strict_high_ram']}"
    if int(_kv(start[-1])["ram_end"], 16) > 1 << 32:
        assert sent > 0, "RAM above 4 GiB, but no strict probe offered it"


def test_smram_refused_by_the_smram_check(fuzz: dict[str, Any]) -> None:
    """Each strict SMRAM probe is refused by the handler's SMRAM branch (its log line says
    reason=smram), not by the OS-RAM range check that would refuse it too."""
    twin = fuzz["twin"]
    if twin is None:
        pytest.skip("twin_only: the handler's full log (debugcon) exists only on the twin")
    done = [ln for ln in fuzz["res"].stdout.splitlines() if ln.startswith("wpp-fuzz done ")]
    _, sent = (int(x) for x in _kv(done[-1])["strict_smram"].split("/"))
    with twin.debugcon.open("rb") as f:
        f.seek(fuzz["debugcon_before"])
        text = f.read().decode(errors="replace")
    by_smram = re.findall(r"^wpp: (?:add_page|get_pages) status=8 error=bad_addr seq=\d+ "
                          r"reason=smram$", text, re.M)
    assert sent > 0 and len(by_smram) >= sent, (len(by_smram), sent)


def test_handler_and_machine_still_work(fuzz: dict[str, Any], target: Any) -> None:
    sanity = [ln for ln in fuzz["res"].stdout.splitlines() if ln.startswith("wpp-fuzz sanity")]
    assert sanity, fuzz["res"].stdout[-2000:]
    kv = _kv(sanity[-1])
    assert (kv["init"], kv["selftest"], kv["counters"], kv["flags_reset"]) == ("0",) * 4
    assert kv["canary_bad_pages"] == "0", "SMM wrote into pages no command named"
    # the OS is up and its driver still reaches the handler
    assert target.shell.run("uptime", timeout=30).ok
    dmesg = target.shell.run("dmesg", timeout=30).stdout
    assert len(BAD_KERNEL.findall(dmesg)) == fuzz["dmesg_before"], dmesg[-2000:]
    for _ in range(2):
        target.shell.run("echo 50 > /dev/wpp-trigger", timeout=30)
    twin = fuzz["twin"]
    sent = int(_kv(fuzz["res"].stdout.splitlines()[-1]).get("handoffs", 0))
    if twin is not None and sent:
        # the boot-time handoff is one-shot: the OS' attempts are logged and ignored
        log = parse_log(twin.debugcon.read_text(errors="replace")).events
        refused = [e for e in log if e.name == "handoff" and e.get("error")]
        assert len(refused) >= sent and all(e["error"] == "already_done" for e in refused)


def test_persistent_device_unchanged(fuzz: dict[str, Any]) -> None:
    twin = fuzz["twin"]
    if twin is None:
        pytest.skip("twin_only: the persistent device is a host file only on the twin")
    assert sha256_ranges(twin.pdev, [fuzz["marker"]]) == fuzz["pdev_before"], \
        "the fuzzer changed the persistent device (PERSIST was not sent)"
    assert inspect_cli(twin.pdev, no_pages=True)[1]["verdict"] == fuzz["verdict_before"]


def test_e820_reserved_ram_refused(fuzz: dict[str, Any]) -> None:
    """Every page of the e820-reserved ranges (not SMRAM, not the WPP region) offered with
    ADD_PAGE: none is OS RAM, none may be accepted (``wpp-smi-fuzz --sweep-reserved``)."""
    line = [ln for ln in fuzz["sweep"].stdout.splitlines() if ln.startswith("wpp-fuzz sweep")]
    assert line, fuzz["sweep"].stdout + fuzz["sweep"].stderr
    accepted, sent = (int(x) for x in _kv(line[-1])["e820_reserved"].split("/"))
    assert sent > 0
    assert accepted == 0, line[-1]
