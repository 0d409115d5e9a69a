"""SMM trusts no BAR the OS can move (issue 13): the persistent device's BAR rewritten.

Ring 0 can rewrite the ivshmem device's BAR2 through its sysfs PCI config file. Before the
fix, with the 512 MiB BAR moved to 0x60000000 (its last MiB then lies in TSEG) or to
0x20000000 (ordinary RAM), ``wpp-smi-probe selftest`` answered ok: the handler read,
wrote and restored a page there from SMM. Now the firmware records the BAR in SMRAM at
the boot-time handoff and compares it before every device access.

For each placement (over TSEG, over RAM, over the WPP region) the test moves the BAR and
drives every command that reaches the device (GET_PAGES into the mailbox and into a page
of ours, CONSUME, RESTORE, SELFTEST, PERSIST after INIT and a page), each from the state
in which only the device check can refuse it: all must answer ``device_moved`` (19) and
log ``wpp: device status=19 error=bar_moved``. SMRAM (the handler's CRC of every SMRAM
page, DEBUG SMRAM_DIGEST) and the RAM under the moved BAR (read through /dev/mem) must be
unchanged, ignoring only pages that also changed between two idle reads (save states,
stacks, the kernel's own RAM). The BAR is put back afterwards and the snapshot still
restores; the board is switched off at the end so the next test gets a fresh boot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from counter_probe import kill_tracked
from twin_only import require_twin, twin_shaped

from hil.drivers.cbmem import parse_log

pytestmark = pytest.mark.twin

LINE = re.compile(r"^wpp-probe (.*)$")
BAR2 = 0x18  # config offsets of BAR2 (low dword) and BAR3 (high dword of a 64-bit BAR)
BAR3 = 0x1C
MEM_PAGES = 64  # pages checked at the moved BAR's base (header, marker, sections)
DEVICE_MOVED = "19"


def _kv(text: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in text.split() if "=" in p)


def probe(target: Any, *cmds: str) -> list[dict[str, str]]:
    """Run wpp-smi-probe; one dict per output line (key=value), in order."""
    res = target.shell.run("wpp-smi-probe " + " ".join(cmds), timeout=120, check=False)
    assert res.exit_code == 0, f"wpp-smi-probe exit {res.exit_code}: {res.stdout}{res.stderr}"
    return [_kv(m.group(1)) for ln in res.stdout.splitlines() if (m := LINE.match(ln.strip()))]


def one(target: Any, *cmds: str) -> dict[str, str]:
    out = probe(target, *cmds)
    assert len(out) == 1, out
    return out[0]


def crcs(line: dict[str, str]) -> list[str]:
    return line["crcs"].split(",")


def volatile(a: list[str], b: list[str]) -> set[int]:
    return {i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y}


def changed(before: list[str], after: list[str], noisy: set[int]) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(before, after, strict=True))
            if x != y and i not in noisy]


@pytest.fixture(scope="module")
def target(target: Any, twin_rom: Path) -> Iterator[Any]:
    """A twin with one vCPU: the SMRAM comparison needs the same CPU to run the handler
    every time. With several CPUs whichever enters SMM first runs it, so the per-CPU
    pages (its stack, its save state) differ from episode to episode by chance: on the
    2-vCPU default, page 1 of TSEG changed in one run and not in the control runs. A
    real board with several CPUs runs the session's target."""
    target.ensure_booted()  # a previous module may have left it off
    fits = target.is_emulated and target.board.emulated.smp == 1
    with twin_shaped(target, twin_rom, "one-cpu", fits, smp=1) as one:
        yield one


@pytest.fixture(scope="module")
def dev(target: Any) -> Iterator[dict[str, Any]]:
    """The ivshmem device, its boot-time BAR, SMRAM as recorded, a restorable snapshot."""
    require_twin(target, "moving the ivshmem BAR (the board's FPGA is another device)")
    target.ensure_booted()
    kill_tracked(target)  # the probe shares the mailbox with the kernel driver
    found = target.shell.run(
        "for d in /sys/bus/pci/devices/*; do [ \"$(cat $d/vendor)\" = 0x1af4 ] && "
        "[ \"$(cat $d/device)\" = 0x1110 ] && echo $d; done", timeout=30, check=False)
    paths = found.stdout.split()
    assert len(paths) == 1, f"ivshmem device not found once: {found.stdout!r}"
    config = paths[0] + "/config"
    guard = [e for e in parse_log(target.shell.run("cbmem -c", timeout=60).stdout).events
             if e.name == "guard" and e.get("status") == 0]
    assert guard, "no 'wpp: guard status=0' line: the handoff did not record the layout"
    g = guard[-1]
    assert g["recorded"] == 1, g.raw
    smram_base, smram_size = (int(x, 16) for x in str(g["smram"]).split(":"))
    bar_base, bar_size = (int(x, 16) for x in str(g["bar"]).split(":"))
    lo = int(one(target, "cfg-read", config, str(BAR2))["value"], 16)
    hi = int(one(target, "cfg-read", config, str(BAR3))["value"], 16)
    assert (hi << 32 | (lo & ~0xF)) == bar_base, "the recorded BAR is not the one in config"
    snap = {ln["cmd"]: ln for ln in probe(target, "snapshot", "16")}
    assert snap["roundtrip-persist"]["status"] == "0", snap
    assert snap["roundtrip-restore"]["status"] == "0", snap
    env = {"config": config, "lo": lo, "hi": hi, "bar_base": bar_base, "bar_size": bar_size,
           "smram": (smram_base, smram_size)}
    try:
        yield env
    finally:
        probe(target, "cfg-write", config, str(BAR2), hex(lo), "cfg-write", config,
              str(BAR3), hex(hi))
        # the handler's state (restored snapshot) and the moved-BAR episodes stay out of
        # the next test: it gets a fresh boot
        target.force_off()


def placements(env: dict[str, Any]) -> dict[str, int]:
    size = env["bar_size"]
    smram_base, smram_size = env["smram"]
    region_base = 0x10000000
    return {
        # the aligned window holding TSEG's last byte: its top lies in SMRAM
        "tseg": (smram_base + smram_size - 1) // size * size,
        # right after the WPP region: ordinary RAM on a 2 GiB twin
        "ram": (region_base + 0x10000000 + size - 1) // size * size,
        # the next aligned window: RAM too (the second control run)
        "ram2": (region_base + 0x10000000 + size - 1) // size * size + size,
        # the aligned window holding the WPP region
        "region": region_base // size * size,
    }


def episode(target: Any, dev: dict[str, Any], where: str) -> list[str]:
    """Move the BAR to `where`, drive every device command, put the BAR back; check the
    answers, the log and the RAM under the moved BAR. Returns the SMRAM digest taken
    right after the refused commands."""
    new = placements(dev)[where]
    size = dev["bar_size"]
    smram_base, smram_size = dev["smram"]
    if where == "tseg":
        assert new < smram_base + smram_size <= new + size
    elif where.startswith("ram"):
        assert new >= 0x20000000 and new + size <= smram_base
    else:
        assert new <= 0x10000000 < new + size
    config = dev["config"]
    mem = ("mem-crc", hex(new), str(MEM_PAGES), "mem-crc", hex(new + size - 4096), "1")

    # the handler holds the known snapshot (GET_PAGES/CONSUME reach the device check)
    assert one(target, "restore-force")["status"] == "0"
    idle = probe(target, *mem, *mem)
    mem_a = crcs(idle[0]) + crcs(idle[1])
    noisy_mem = volatile(mem_a, crcs(idle[2]) + crcs(idle[3]))

    moved = probe(target, "cfg-write", config, str(BAR2), hex(new | (dev["lo"] & 0xF)),
                  "cfg-write", config, str(BAR3), hex(new >> 32),
                  "cfg-read", config, str(BAR2))
    try:
        assert int(moved[2]["value"], 16) & ~0xF == new & 0xFFFFFFFF, moved
        out = probe(target, "get-pages", "0", "1", "get-pages-own", "0", "consume",
                    "restore-force", "selftest", "init", "own-page", "persist",
                    "smram-digest", *mem)
    finally:
        probe(target, "cfg-write", config, str(BAR2), hex(dev["lo"]),
              "cfg-write", config, str(BAR3), hex(dev["hi"]))
    by = {ln["cmd"]: ln for ln in out if "status" in ln}
    for ln in out:
        if "seq" in ln:
            assert ln["seq_ack"] == ln["seq"], f"not answered: {ln}"
    for cmd in ("get-pages", "get-pages-own", "consume", "restore-force", "selftest",
                "persist"):
        assert by[cmd]["status"] == DEVICE_MOVED, f"{where}: {cmd} -> {by[cmd]}"
        assert by[cmd]["status_name"] == "device_moved"
    # tracking needs no device: INIT and a page of ours still work, so PERSIST got to
    # the device check
    assert by["init"]["status"] == "0" and by["own-page"]["status"] == "0"
    assert by["smram-digest"]["status"] == "0"
    digest = crcs(by["smram-digest"])
    assert len(digest) == smram_size // 4096
    mem_lines = [ln for ln in out if ln.get("cmd") == "mem-crc"]
    bad_mem = changed(mem_a, crcs(mem_lines[0]) + crcs(mem_lines[1]), noisy_mem)
    assert not bad_mem, f"{where}: RAM under the moved BAR changed: pages {bad_mem}"

    log = parse_log(target.shell.run("cbmem -c", timeout=60).stdout).events
    refusals = [e for e in log if e.name == "device" and e.get("error") == "bar_moved"
                and e.get("bar") == new]
    assert len(refusals) >= 6, f"{where}: {len(refusals)} 'bar_moved' lines for 0x{new:x}"
    assert all(e["status"] == 19 and e["recorded"] == dev["bar_base"] for e in refusals)

    # BAR back where it was at boot: the device and the snapshot are usable again
    back = {ln["cmd"]: ln for ln in probe(target, "selftest", "restore-force")}
    assert back["selftest"]["status"] == "0", back
    assert back["restore-force"]["status"] == "0", back
    assert back["restore-force"]["r1"] == "16"
    return digest


def test_moved_bar_refused_smram_and_ram_unchanged(target: Any, dev: dict[str, Any]) -> None:
    """Every placement refused; SMRAM after the refused commands over TSEG and over the
    region equals SMRAM after the same commands over far-away RAM, except pages that
    differ between two such control runs at two RAM addresses (the handler's counters;
    stack pages holding timestamps and the formatted BAR address)."""
    control = episode(target, dev, "ram")
    control2 = episode(target, dev, "ram2")
    noisy = volatile(control, control2)
    assert len(noisy) < len(control) // 8, f"SMRAM too volatile to compare: {sorted(noisy)}"
    for where in ("tseg", "region"):
        digest = episode(target, dev, where)
        bad = changed(control2, digest, noisy)
        assert not bad, f"{where}: SMRAM pages changed: {bad} (volatile: {sorted(noisy)})"
