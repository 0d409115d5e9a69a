"""Persist -> power cut -> boot -> recreate, on any target (`pytest --target=...`).

The probe is ``wpp-counter`` (see `counter_probe`): after recreation it must print the
very next counter value, the same buffer checksum, correct registers/FPU/SIMD, the log
file's offset and the private mapping's modified page, under the same pid. Its files live
on the persistent disk (/data), so only the firmware's snapshot carries the process.

Byte-exactness is checked three ways: the counter's own checksum, a sha256 of the buffer
read through /proc/<pid>/mem before the trigger and after recreation, and (on the twin)
the same bytes read offline from the persistent-device file by virtual address, with
``hil snapshot inspect --json`` run on it as a user would.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from counter_probe import COUNTER, Probe
from twin_only import assert_complete_snapshot, optional_twin

from hil.core.timeout import wait_for
from hil.wpp import snapshot
from hil.wpp.experiment import MODES

PAGE = 4096


def _layout(probe: Probe) -> list[tuple[str, str, str]]:
    """(range, perms, path) of each mapping, as /proc/<pid>/maps shows it."""
    out = []
    for line in probe.run(f"cat /proc/{probe.pid}/maps").stdout.splitlines():
        f = line.split()
        out.append((f[0], f[1], f[5] if len(f) > 5 else ""))
    return out


def _snapshot_buffer(pdev: Path, addr: int, length: int) -> tuple[str, int]:
    """(sha256 of buffer bytes 8.., word 0) read offline from the snapshot by address."""
    report = snapshot.inspect(pdev, verify_pages=False)
    assert report.verdict is snapshot.Verdict.COMPLETE, report.format_text()
    with snapshot.SnapshotImage(pdev) as img:
        index = {p.virtual_address: p.index for p in img.pages()}
    missing = [va for va in range(addr, addr + length, PAGE) if va not in index]
    assert not missing, f"{len(missing)} buffer pages not in the snapshot (first 0x{missing[0]:x})"
    h = hashlib.sha256()
    base = report.page_area_offset or 0
    with pdev.open("rb") as f:
        for i, va in enumerate(range(addr, addr + length, PAGE)):
            f.seek(base + index[va] * PAGE)
            page = f.read(PAGE)
            if i == 0:
                word0 = int.from_bytes(page[:8], "little")
                page = page[8:]
            h.update(page)
    return h.hexdigest(), word0


def _assert_no_kernel_bug(probe: Probe) -> None:
    """This boot's kernel log has no BUG or WARNING: e.g. an mm freed with RSS counters
    another mm's events were charged to ("BUG: Bad rss-counter state"), which the
    recreation's mm switch caused when it did not flush the task's cached counts."""
    log = str(probe.run("dmesg").stdout)
    bad = [ln for ln in log.splitlines() if "BUG:" in ln or "WARNING: CPU" in ln]
    assert not bad, "kernel complained during this boot:\n" + "\n".join(bad[:5])


@pytest.mark.parametrize("mode", MODES)
def test_counter_continues_after_power_loss(wpp: Any, mode: str) -> None:
    """Registers, FPU/SIMD, buffer, file offset, pid and signal handlers come back, every
    mapping at its address although the guest randomizes layouts (ASLR on); tracked again."""
    probe = Probe(wpp, mode=mode)
    assert probe.run("cat /proc/sys/kernel/randomize_va_space").stdout.strip() == "2"
    layout = _layout(probe)
    probe.persist()
    probe.boot()
    new = probe.assert_continues(probe.recreate())
    assert _layout(probe) == layout
    # stdout and stderr (2>&1) still share one open file: one offset
    fdinfo = probe.run(f"kill -STOP {probe.pid}; grep -h pos: /proc/{probe.pid}/fdinfo/1 "
                       f"/proc/{probe.pid}/fdinfo/2; kill -CONT {probe.pid}").stdout
    pos = fdinfo.split()[1::2]
    assert len(pos) == 2 and pos[0] == pos[1], f"stdout/stderr offsets diverged: {fdinfo}"
    # the log file on disk holds exactly n fixed-width lines, the last one n's
    log = probe.run(f"kill -STOP {probe.pid}; tail -c 64 {probe.log}; "
                    f"stat -c %s {probe.log}; kill -CONT {probe.pid}").stdout.split()
    assert int(log[-1]) % 64 == 0 and log[0] == f"n={int(log[-1]) // 64:020d}"
    # signal handlers came back: SIGUSR1 (verify now) does not kill, SIGTERM ends cleanly
    probe.run(f"kill -USR1 {probe.pid}")
    probe.wait_lines(2, after=new[-1].n)
    assert probe.wpp.alive(probe.prog)
    probe.run(f"kill -TERM {probe.pid}")
    done = wait_for(lambda: re.search(r"^wpp-counter: done n=\d+ bad=(\d+)$",
                                      probe.output(), re.M), 30, "counter's end")
    assert done[1] == "0", "an iteration failed its self-checks"
    # both address spaces the recreation handled are gone now (the recreator's own, the
    # process'): the kernel checked their counters when it freed them
    wait_for(lambda: not probe.run(f"[ -d /proc/{probe.pid} ]", check=False).ok, 30,
             "the recreated counter's exit")
    _assert_no_kernel_bug(probe)


@pytest.mark.parametrize("mib", [1, 10, 100])
def test_buffers_byte_exact(wpp: Any, target: Any, mib: int) -> None:
    """The buffer's bytes before the trigger == in the snapshot == after recreation."""
    probe = Probe(wpp, mode="batched", buffer_mib=mib, verify_every=5)
    before = probe.buffer_sha256()
    probe.persist()
    twin = optional_twin(target, "reading the buffer offline from the snapshot")
    if twin is not None:
        offline, word0 = _snapshot_buffer(twin.pdev, probe.buf_addr, mib << 20)
        assert offline == before, "the snapshot's buffer pages differ from the process'"
        assert probe.last is not None and word0 in (probe.last.n, probe.last.n + 1)
        assert_complete_snapshot(twin.pdev, mib * 256)
    probe.boot()
    res = probe.recreate()
    probe.assert_continues(res)
    assert probe.buffer_sha256() == before, "the recreated buffer differs"
    print(res.stdout.strip())
    probe.stop()


def test_private_file_mapping_keeps_modified_page(wpp: Any) -> None:
    """The COW page of a MAP_PRIVATE file mapping comes back; the file stays unmodified."""
    probe = Probe(wpp, private_map=True)
    probe.persist()
    probe.boot()
    before = probe.run(f"md5sum {probe.map}").stdout.split()[0]
    new = probe.assert_continues(probe.recreate())
    assert all(ln.checks["map"] == "ok" for ln in new)
    assert probe.run(f"md5sum {probe.map}").stdout.split()[0] == before
    probe.stop()


@pytest.mark.slow
def test_ten_cycles_without_drift(wpp: Any) -> None:
    """A recreated process is tracked again and survives the next power loss, ten times,
    in every mode in turn: the counter exact each time and no growth of the firmware's
    regions and pages (nor of the snapshot's, read offline on the twin)."""
    probe = Probe(wpp, private_map=True)
    counts: list[tuple[int, int]] = []
    snap_counts: list[tuple[int, int]] = []
    for cycle in range(10):
        probe.run(f"kill -STOP {probe.pid}")
        counts.append(probe.fw_counts())
        probe.run(f"kill -CONT {probe.pid}")
        report = probe.persist()  # hil snapshot inspect --json on the twin
        if report is not None:
            snap_counts.append((report["sections"][1]["count"], report["page_count"]))
        probe.mode = MODES[(cycle + 1) % len(MODES)]  # the recreated process' mode
        probe.boot()
        new = probe.assert_continues(probe.recreate())
        probe.wait_lines(2, after=new[0].n)
    print("firmware (regions, pages) per cycle:", counts)
    print("snapshot (regions, pages) per cycle:", snap_counts)
    assert len(set(c[0] for c in counts)) == 1, f"region count drifted: {counts}"
    assert max(c[1] for c in counts) - counts[0][1] <= 2, f"page count grew: {counts}"
    if snap_counts:
        assert len(set(c[0] for c in snap_counts)) == 1, snap_counts
        assert max(c[1] for c in snap_counts) - snap_counts[0][1] <= 2, snap_counts
    probe.stop()


def test_refusals_leave_the_snapshot_usable(wpp: Any) -> None:
    """Missing file and another binary refuse without consuming the snapshot; a tracked
    process blocks a restore; a consumed snapshot refuses unless --force."""
    probe = Probe(wpp)
    probe.persist()
    probe.boot()
    # the files as the power-loss procedure left them, for the forced recreation below
    probe.run(f"for f in {probe.log} {probe.state} {probe.prog.out_path}; "
              f"do cp $f $f.atloss; done")

    probe.run(f"mv {probe.log} {probe.log}.away")
    msg = f"open file {probe.log} (fd 3) is missing"
    probe.assert_refused(probe.recreate(), msg)
    assert probe.kernel_said(msg) == 1
    probe.run(f"mv {probe.log}.away {probe.log}")

    probe.assert_refused(
        probe.recreate(binary="/usr/bin/wpp-synth"),
        f"wrong binary: the snapshot is of {COUNTER}, not /usr/bin/wpp-synth")

    last = probe.last
    probe.assert_continues(probe.recreate())
    res = probe.recreate()  # while the recreated process is tracked: its state would be lost
    assert res.exit_code == 1
    assert f"pid {probe.pid} is tracked: restoring would discard its firmware state" in res.stderr
    probe.stop()

    msg = "snapshot already recreated (consumed); force to recreate it again"
    probe.assert_refused(probe.recreate(), msg)
    assert probe.kernel_said(msg) == 1

    probe.run(f"for f in {probe.log} {probe.state} {probe.prog.out_path}; "
              f"do cp $f.atloss $f; done")
    probe.last = last
    res = probe.recreate("--force")
    probe.assert_continues(res)
    assert "forced over consumed" in res.stdout
    probe.stop()
