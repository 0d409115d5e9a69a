"""Every WPP SMI holds every CPU in SMM before the handler acts (issue 12, item 2).

On the board the chipset sends each SMI to all cores and coreboot's SMM entry parks the
ones that do not run the handler. QEMU's ICH9 does so only after the firmware negotiated
"SMI broadcast" through fw_cfg (``wpp: smi_broadcast ... broadcast=1``); without it an
APM SMI reaches only the CPU that wrote port 0xb2 while the others keep running OS code
beside the handler. The handler counts the CPUs in SMM and waits (bounded) for all of
them; DEBUG SELFTEST replies with that count (r2 seen, r3 expected) and PERSIST logs it.

Needs a target with at least 2 CPUs. A 1-vCPU twin (the default inventory) is not
skipped: this module boots a private 2-vCPU twin of its own with the session's ROM, so
`make test` always runs it; only a real board with one CPU would skip, saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twin_only import twin_shaped

from hil.drivers.cbmem import parse_log

pytestmark = pytest.mark.twin

PROBE = re.compile(r"^wpp-probe (.*)$")


def _nproc(target: Any) -> int:
    return int(target.shell.run("nproc", timeout=30).stdout.strip())


@pytest.fixture(scope="module")
def target(target: Any, twin_rom: Path) -> Iterator[Any]:
    """The session's target if it has >= 2 CPUs, else (a twin) a private 2-vCPU twin."""
    target.ensure_booted()  # a previous module (test_smi_fuzz) may have left it off
    with twin_shaped(target, twin_rom, "smp", _nproc(target) >= 2, smp=2) as smp:
        yield smp


@pytest.fixture(scope="module")
def cpus(target: Any) -> int:
    """CPUs of the target; the module is skipped with the reason on one CPU."""
    n = _nproc(target)
    if n < 2:
        pytest.skip(f"target '{target.board.name}' has {n} CPU: the SMI rendezvous needs >= 2 "
                    "(the twin: an inventory with emulated.smp: 2, see this module's docstring)")
    return n


def _probe_lines(out: str) -> list[dict[str, str]]:
    lines = []
    for line in out.splitlines():
        m = PROBE.match(line.strip())
        if m:
            lines.append(dict(p.split("=", 1) for p in m.group(1).split() if "=" in p))
    return lines


def _wpp_lines(target: Any) -> list[str]:
    log = target.shell.run("cbmem -c", timeout=60).stdout
    return [ln.strip() for ln in log.splitlines() if ln.strip().startswith("wpp:")]


def test_firmware_expects_every_cpu_in_smm(target: Any, cpus: int) -> None:
    """The handoff tells SMM that every SMI reaches all CPUs; on the twin only because
    QEMU accepted the broadcast request."""
    log = parse_log(target.shell.run("cbmem -c", timeout=60).stdout)
    handoff = [e for e in log.events if e.name == "handoff" and e.get("status") == 0]
    assert handoff, "no 'wpp: handoff status=0' line in cbmem -c"
    assert int(handoff[-1]["smi_cpus"]) == cpus, (handoff[-1], cpus)
    if target.is_emulated:
        neg = [e for e in log.events if e.name == "smi_broadcast"]
        assert neg, "no 'wpp: smi_broadcast' line: the twin's firmware did not negotiate"
        assert int(neg[-1]["broadcast"]) == 1 and neg[-1].get("status") == 0, neg[-1]


def test_every_debug_smi_held_all_cpus(target: Any, cpus: int) -> None:
    """SELFTEST from each CPU in turn, with the other CPUs idle and then busy in a
    user-space loop: every reply saw all CPUs in SMM, none missing."""
    n_each = 10
    spinners = target.shell.run(
        f"for c in $(seq 0 {cpus - 1}); do taskset -c $c sh -c 'while :; do :; done' & "
        "done; sleep 0.2; echo started", timeout=30)
    assert "started" in spinners.stdout
    try:
        busy = _selftests(target, cpus, n_each)
    finally:
        target.shell.run("kill $(pgrep -f 'while :; do :; done') 2>/dev/null; true",
                         timeout=30, check=False)
    idle = _selftests(target, cpus, n_each)
    for label, replies in (("busy", busy), ("idle", idle)):
        assert len(replies) == cpus * n_each, (label, replies[:3])
        for r in replies:
            assert r["status"] == "0", (label, r)
            assert (int(r["r2"]), int(r["r3"])) == (cpus, cpus), (label, r)
    lines = _wpp_lines(target)
    missing = [ln for ln in lines if ln.startswith("wpp: rendezvous ")]
    assert not missing, f"an SMI went ahead without all CPUs: {missing[:3]}"
    selftests = [ln for ln in lines if ln.startswith("wpp: selftest status=0 ")]
    assert len(selftests) >= 2 * cpus * n_each
    assert all(f" cpus={cpus} cpus_expected={cpus} " in ln
               for ln in selftests[-2 * cpus * n_each:]), selftests[-3:]


def _selftests(target: Any, cpus: int, n: int) -> list[dict[str, str]]:
    replies: list[dict[str, str]] = []
    for c in range(cpus):
        cmds = " ".join(["selftest"] * n)
        res = target.shell.run(f"taskset -c {c} wpp-smi-probe {cmds}", timeout=120,
                               check=False)
        assert res.exit_code == 0, res.stdout
        replies += [kv for kv in _probe_lines(res.stdout) if kv.get("cmd") == "selftest"]
    return replies


def test_persist_held_all_cpus(target: Any, cpus: int) -> None:
    """A 200-page persist through SMM logs every CPU in SMM, and no SMI of the round
    trip (batch, persist, restore, get-pages, consume) went ahead without one."""
    res = target.shell.run("wpp-smi-probe roundtrip 200", timeout=120, check=False)
    assert res.exit_code == 0, res.stdout
    by_cmd = {kv["cmd"]: kv for kv in _probe_lines(res.stdout)}
    assert by_cmd["roundtrip-persist"]["status"] == "0"
    lines = _wpp_lines(target)
    persist = [ln for ln in lines if ln.startswith("wpp: persist status=0 ")]
    assert persist and "pages=200 " in persist[-1], persist[-3:]
    assert f" cpus={cpus} cpus_expected={cpus}" in persist[-1], persist[-1]
    assert not [ln for ln in lines if ln.startswith("wpp: rendezvous ")]
