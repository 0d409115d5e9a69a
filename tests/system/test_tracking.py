"""Process tracking and the power-loss trigger (Kernel I) on any target.

A program started with ``wpp-start`` is tracked: its /proc flag says so, the firmware got
Init, and in every mode (eager, batched, lazy) the firmware's region list equals
/proc/<pid>/maps and its page list equals the present pages of /proc/<pid>/pagemap
(``wpp-status --compare`` reads the firmware's lists back through the driver's debugfs
files). After the trigger and a real power cut the persistent device holds a complete
snapshot with the same regions, the same pages and the process control block (read
offline from the twin's persistent-device file; on the lab board that part is skipped
with a warning). Refusals: nothing tracked, a second tracked process, a thread in a
tracked process (default ``wpp.allow_threads=0``), invalid magic numbers.

The workload is ``wpp-counter`` with a private file mapping (anonymous, file-backed and
copy-on-write pages) plus a shell loop that forks every second (copy-on-write in the
tracked process while children come and go).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from twin_only import inspect_cli, optional_twin

from hil.core.timeout import wait_for
from hil.wpp import snapshot

MODES = ("eager", "batched", "lazy")
COUNTER = "/usr/bin/wpp-counter"
FORKER = "sh -c 'a=$(seq 1 3000); while :; do b=$(echo $a | wc -c); sleep 1; done'"
PCB_MAGIC = 0x42435057  # "WPCB", kernel/wpp/wpp_pcb.h
PCB_HEAD = struct.Struct("<IHHIIIIQQiiiii")  # magic .. sid
PCB_EXE_OFFSET = PCB_HEAD.size + 4 * 4 + 4 + 16  # after uid,gid,euid,egid, personality, comm
SKIP_NAMES = ("[vvar]", "[vsyscall]")  # pfn mappings: not reported (kernel/README.md)


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def _idle(target: Any) -> None:
    wait_for(lambda: _sh(target, "cat /sys/kernel/wpp/tracked_pid").stdout.strip() == "0",
             30, "no tracked process (a previous one still exiting)")


def _set_mode(target: Any, mode: str) -> None:
    _sh(target, f"echo {mode} > /sys/module/wpp/parameters/mode")
    assert _sh(target, "cat /sys/module/wpp/parameters/mode").stdout.strip() == mode


def _start(wpp: Any, target: Any, mode: str, workload: str, buffer_mib: int = 1,
           extra: str = "") -> Any:
    _idle(target)
    _set_mode(target, mode)
    if workload == "counter":
        cmd = (f"{COUNTER} --period-ms 200 --buffer-mib {buffer_mib} --log-file /tmp/wpp-tr.log "
               f"--state-file /tmp/wpp-tr.state --private-map /tmp/wpp-tr.map {extra}")
        _sh(target, "rm -f /tmp/wpp-tr.log /tmp/wpp-tr.state /tmp/wpp-tr.map")
    else:
        cmd = FORKER
    prog = wpp.start(cmd, name=f"tr-{workload}")
    assert prog.tracked
    assert wpp.tracked_pid() == prog.pid
    return prog


def _settle(target: Any, pid: int) -> None:
    """Let the program run a little, then freeze it for a stable picture."""
    _sh(target, "sleep 3")
    _sh(target, f"kill -STOP {pid}")
    _sh(target, "sleep 0.5")


def _dump(target: Any, pid: int) -> tuple[set[tuple[int, int, int, str]], set[tuple[int, int]]]:
    out = _sh(target, f"wpp-status --dump {pid}").stdout
    regions, pages = set(), set()
    for line in out.splitlines():
        f = line.split(" ", 5)
        if f[0] == "R":
            path = f[5] if len(f) > 5 else ""
            regions.add((int(f[1], 16), int(f[2], 16) - int(f[1], 16), int(f[3], 16), path))
        elif f[0] == "P":
            pages.add((int(f[1], 16), int(f[2], 16)))
    return regions, pages


def test_trigger_device_is_root_only(target: Any) -> None:
    assert _sh(target, "stat -c %a /dev/wpp-trigger").stdout.strip() == "600"


def test_process_persistence_flag(wpp: Any, target: Any) -> None:
    prog = _start(wpp, target, "eager", "forker")
    flag = _sh(target, f"cat /proc/{prog.pid}/process_persistence").stdout.strip()
    assert flag == "Process Persistence flag: true"
    other = _sh(target, "sleep 60 > /dev/null 2>&1 & echo $!").stdout.strip().splitlines()[-1]
    try:
        flag = _sh(target, f"cat /proc/{other}/process_persistence").stdout.strip()
        assert flag == "Process Persistence flag: false"
    finally:
        _sh(target, f"kill {other}", check=False)


def test_start_sends_init(wpp: Any, target: Any) -> None:
    _idle(target)

    def generation() -> int:
        text = _sh(target, "cat /sys/kernel/wpp/fw_counters").stdout
        return int(dict(ln.split(" ", 1) for ln in text.splitlines())["generation"])

    before = generation()
    inits_before = len(wpp.debugcon_events("init")) if target.is_emulated else None
    _start(wpp, target, "eager", "forker")
    assert generation() == before + 1
    stats = dict(ln.split(" ", 1) for ln in _sh(target, "cat /sys/kernel/wpp/stats")
                 .stdout.splitlines())
    assert int(stats["init"].split()[0]) >= 1
    if target.is_emulated:
        # the twin's SMM log goes to debugcon (4.15's SMM printk misses CBMEM)
        events = wpp.debugcon_events("init")
        assert len(events) == inits_before + 1
        assert events[-1]["status"] == 0
    else:
        events = wpp.events("init")
        assert events and events[-1]["status"] == 0


@pytest.mark.parametrize("workload", ["counter", "forker"])
@pytest.mark.parametrize("mode", MODES)
def test_firmware_state_matches_proc(wpp: Any, target: Any, mode: str, workload: str) -> None:
    prog = _start(wpp, target, mode, workload)
    _settle(target, prog.pid)
    # batched: flush the queue; lazy: walk now (eager: nothing pending)
    _sh(target, "wpp-trigger 70")
    res = _sh(target, f"wpp-status --compare {prog.pid}", timeout=180, check=False)
    assert res.exit_code == 0, res.stdout
    assert "differences 0" in res.stdout
    counts = res.stdout.strip().splitlines()[-1]
    assert "firmware 0;" not in counts  # something was compared
    _sh(target, f"kill -CONT {prog.pid}")


def test_batched_queue_overflow_flushes_in_order(wpp: Any, target: Any) -> None:
    """136 MiB = 34816 new pages: more than one batch (32768 ops) while running."""

    def batches() -> int:
        stats = dict(ln.split(" ", 1) for ln in _sh(target, "cat /sys/kernel/wpp/stats")
                     .stdout.splitlines())
        return int(stats["page_batch"].split()[0])

    before = batches()
    prog = _start(wpp, target, "batched", "counter", buffer_mib=136,
                  extra="--verify-every 100000")
    wait_for(lambda: "n=2 " in wpp.output(prog), 180, "wpp-counter filled its buffer")
    assert batches() - before >= 2  # exec baseline + at least one overflow while running
    _settle(target, prog.pid)
    _sh(target, "wpp-trigger 70")
    res = _sh(target, f"wpp-status --compare {prog.pid}", timeout=300, check=False)
    assert res.exit_code == 0, res.stdout
    pages = int(res.stdout.split("pagemap ")[1].split()[0])
    assert pages > 34816
    _sh(target, f"kill -CONT {prog.pid}")


@pytest.mark.parametrize("mode", MODES)
def test_power_loss_persists_complete_snapshot(wpp: Any, target: Any, mode: str) -> None:
    prog = _start(wpp, target, mode, "counter")
    _settle(target, prog.pid)
    regions, pages = _dump(target, prog.pid)
    exe = _sh(target, f"readlink /proc/{prog.pid}/exe").stdout.strip()

    wpp.trigger()  # 10: stop, PCB, flush/walk, PERSIST, kill
    wait_for(lambda: not wpp.alive(prog), 10, "the persisted process is killed")
    assert wpp.tracked_pid() == 0
    log = _sh(target, "dmesg | grep 'wpp: power loss'").stdout
    assert f"pid {prog.pid} persisted" in log
    target.power_cut()

    twin = optional_twin(target, "comparing the snapshot read offline with /proc")
    if twin is None:
        target.boot()
        return
    pdev = twin.pdev
    rc, report = inspect_cli(pdev)
    assert rc == 0 and report["verdict"] == "complete", report
    assert report["marker_state"] == "complete" and report["page_crc_ok"] is True
    with snapshot.SnapshotImage(pdev) as img:
        snap_regions = {
            (r.virtual_address, r.length, r.protection, r.file_path)
            for r in img.regions() if r.file_path not in SKIP_NAMES
        }
        snap_pages = {(p.virtual_address, p.physical_address) for p in img.pages()}
        meta = img.metadata()
    assert report["page_count"] == len(snap_pages)
    assert snap_regions == regions
    assert snap_pages == pages
    magic, version, header_size, total, _crc, _fl, _abi, _seq, _ts, pid, *_ = \
        PCB_HEAD.unpack_from(meta, 0)
    assert magic == PCB_MAGIC and version == 1
    assert total == len(meta) and header_size < total
    assert pid == prog.pid
    assert meta[PCB_EXE_OFFSET:PCB_EXE_OFFSET + 256].split(b"\0")[0].decode() == exe
    target.boot()


def test_refuses_power_loss_without_tracked_process(target: Any) -> None:
    _idle(target)
    res = _sh(target, "wpp-trigger 10", check=False)
    assert res.exit_code == 1
    assert "no tracked process" in res.stderr + res.stdout
    assert "no tracked process" in _sh(target, "dmesg | tail -n 5").stdout


@pytest.mark.parametrize("value", ["99", "11", "0", "abc", "-10"])
def test_refuses_invalid_magic_numbers(target: Any, value: str) -> None:
    res = _sh(target, f"echo {value} > /dev/wpp-trigger", check=False)
    assert res.exit_code != 0
    assert "Invalid argument" in res.stderr + res.stdout


def test_refuses_second_tracked_process(wpp: Any, target: Any) -> None:
    first = _start(wpp, target, "eager", "forker")
    res = _sh(target, "wpp-start -d sleep 30", check=False)
    assert res.exit_code == 1
    assert "already tracked" in res.stderr + res.stdout
    assert f"pid {first.pid} is already tracked" in _sh(target, "dmesg | tail -n 5").stdout
    assert wpp.tracked_pid() == first.pid
    res = _sh(target, "echo lazy > /sys/module/wpp/parameters/mode", check=False)
    assert res.exit_code != 0  # mode is fixed while a process is tracked


def test_refuses_thread_in_tracked_process(target: Any) -> None:
    _idle(target)
    res = _sh(target, "wpp-start -T", check=False)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "thread refused" in res.stdout
    assert "clone(CLONE_THREAD) refused" in _sh(target, "dmesg | tail -n 5").stdout


def test_threads_allowed_only_when_enabled(target: Any) -> None:
    _idle(target)
    param = "/sys/module/wpp/parameters/allow_threads"
    assert _sh(target, f"cat {param}").stdout.strip() == "N"
    _sh(target, f"echo 1 > {param}")
    try:
        res = _sh(target, "wpp-start -T", check=False)
        assert res.exit_code == 1 and "NOT refused" in res.stdout, res.stdout + res.stderr
    finally:
        _sh(target, f"echo 0 > {param}")
    _idle(target)
    assert _sh(target, "wpp-start -T", check=False).exit_code == 0


def test_bars_pinned_below_4g(target: Any) -> None:
    pins = _sh(target, "cat /sys/module/wpp/parameters/pin_bars").stdout.strip()
    if pins in ("", "(null)"):
        pytest.skip("wpp.pin_bars is not on this target's kernel command line")
    dmesg = _sh(target, "dmesg | grep 'wpp: BAR'", check=False).stdout
    assert "below 4 GiB" in dmesg
    vendor, device = pins.split(",")[0].split(":")
    res = _sh(target, f"for d in /sys/bus/pci/devices/*; do "
                      f"[ $(cat $d/vendor) = 0x{vendor} ] && [ $(cat $d/device) = 0x{device} ] "
                      f"&& cat $d/resource; done; true")
    starts = [int(ln.split()[0], 16) for ln in res.stdout.splitlines() if ln.strip()]
    assert any(starts), "the pinned device has no assigned BAR"
    assert all(s < 1 << 32 for s in starts if s)
