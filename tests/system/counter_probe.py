"""`Probe`: one ``wpp-counter`` run on the target, carried across power losses.

``wpp-counter`` (kernel/tools) prints one line per iteration with the counter, a checksum
of its PRNG buffer, register/FPU/SIMD self-checks, its log file's offset and, with
``--private-map``, the state of a private file mapping. A correct recreation prints the
very next counter value with every check ``ok`` and the same buffer checksum.

The program's files (stdout, log, state, mapped file) live on storage that survives the
cut, like on a real machine: the twin's ext4 disk at ``/data`` (the board's own disk
there). Nothing is copied off the target: everything in memory comes back only through
the firmware's snapshot, and the files are what the power-loss procedure wrote back.
"""

from __future__ import annotations

import re
from typing import Any

from twin_only import inspect_cli, twin_files

from hil.core.timeout import wait_for
from hil.wpp.experiment import (
    COUNTER_BIN,
    LOG_LINE,
    MODE_PARAM,
    MODES,
    TRACKED_PID,
    CounterLine,
    continuation_checks,
    failed_checks,
    parse_counter,
    recreated_pids,
)

COUNTER = COUNTER_BIN
__all__ = ["COUNTER", "DATA", "MODES", "Probe", "kill_tracked", "parse_lines"]
DATA = "/data/wpp-system"  # on the persistent disk
# one parser and one set of checks for the suite, the CLI and the bench
parse_lines = parse_counter

START_RE = re.compile(r"^wpp-counter: start pid=\d+ .* sum=(?P<sum>[0-9a-f]+) "
                      r"buf_addr=(?P<addr>0x[0-9a-f]+|\(nil\)) ", re.M)


def kill_tracked(target: Any) -> None:
    """A process a failed test left tracked would block tracking and recreation."""
    run = target.shell.run
    run(f"p=$(cat {TRACKED_PID}); [ $p = 0 ] || kill -9 $p", timeout=30,
        check=False)
    wait_for(lambda: run(f"cat {TRACKED_PID}", timeout=30).stdout.strip() == "0",
             30, "no tracked process (a previous one still exiting)")


class Probe:
    """One wpp-counter run across power losses; files under `DATA` on the target."""

    def __init__(self, wpp: Any, *, mode: str = "eager", buffer_mib: int = 1,
                 private_map: bool = False, name: str = "rc", period_ms: int = 200,
                 verify_every: int = 1) -> None:
        self.wpp = wpp
        self.target = wpp.target
        self.mode = mode
        self.buffer_mib = buffer_mib
        self.verify_every = verify_every
        self.log = f"{DATA}/{name}.log"
        self.state = f"{DATA}/{name}.state"
        self.map = f"{DATA}/{name}.map"
        wpp.out_dir = DATA  # stdout too: the recreated process reopens it
        args = (f"--period-ms {period_ms} --buffer-mib {buffer_mib} --log-file {self.log} "
                f"--state-file {self.state} --verify-every {verify_every}")
        if private_map:
            args += f" --private-map {self.map}"
        self.run(f"mkdir -p {DATA} && rm -f {self.log} {self.state} {self.map} "
                 f"{DATA}/wpp-{name}.out")
        kill_tracked(self.target)
        self.set_mode(mode)
        self.prog = wpp.start(f"{COUNTER} {args}", name=name)
        self.pid = self.prog.pid
        self.last: CounterLine | None = None
        self.wait_lines(3, timeout=120 + 2 * buffer_mib)
        # no sync here: the power-loss procedure itself writes back the files the process
        # has open and the ones behind its mappings (the private map's file is closed)
        start = START_RE.search(self.output())
        assert start, f"no start line: {self.output()[:300]}"
        self.buf_addr = int(start["addr"], 16) if start["addr"] != "(nil)" else 0
        self.sum0 = start["sum"]

    # -- target access ---------------------------------------------------------------------

    def run(self, cmd: str, timeout: float = 60, check: bool = True) -> Any:
        return self.target.shell.run(cmd, timeout=timeout, check=check)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.run(f"echo {mode} > {MODE_PARAM}")

    def output(self) -> str:
        return str(self.wpp.output(self.prog))

    def lines(self) -> list[CounterLine]:
        return parse_lines(self.output())

    def wait_lines(self, count: int, *, after: int = -1, timeout: float = 60) -> list[CounterLine]:
        def enough() -> list[CounterLine] | None:
            new = [ln for ln in self.lines() if ln.n > after]
            return new if len(new) >= count else None

        return wait_for(enough, timeout, f"{count} wpp-counter lines after n={after}")

    def fw_counts(self) -> tuple[int, int]:
        """(regions, pages) the firmware tracks now, after bringing it up to date (70)."""
        self.run("wpp-trigger 70")
        text = self.run("cat /sys/kernel/wpp/fw_counters").stdout
        kv = dict(ln.split(" ", 1) for ln in text.splitlines() if " " in ln)
        return int(kv["regions_used"]), int(kv["pages_used"])

    def buffer_sha256(self) -> str:
        """sha256 of the PRNG buffer as the process sees it, word 0 (the counter's mirror,
        rewritten every iteration) left out; the process is stopped while it is read."""
        length = self.buffer_mib << 20
        res = self.run(
            f"kill -STOP {self.pid}; dd if=/proc/{self.pid}/mem bs=1M "
            f"iflag=skip_bytes,count_bytes skip={self.buf_addr + 8} count={length - 8} "
            f"2>/dev/null | sha256sum; kill -CONT {self.pid}", timeout=300)
        return str(res.stdout.split()[0])

    # -- the cycle -------------------------------------------------------------------------

    def persist(self) -> dict[str, Any] | None:
        """Power-loss trigger (the kernel writes the open files back), then cut mains; the
        board stays off. On the twin the snapshot is then checked with ``hil snapshot
        inspect --json`` (complete, not consumed) and its report returned."""
        self.wpp.trigger()
        self.last = self.note_last()
        self.target.power_cut()
        if not self.target.is_emulated:
            return None
        rc, report = inspect_cli(twin_files(self.target, "inspecting the snapshot").pdev,
                                 no_pages=True)
        assert rc == 0 and report["verdict"] == "complete", report
        assert report["marker_state"] == "complete", report
        return report

    def note_last(self) -> CounterLine:
        lines = self.lines()
        assert lines, "the counter printed nothing before the power loss"
        last = lines[-1]
        assert last.pid == self.pid
        self.last = last
        return last

    def boot(self) -> None:
        self.target.boot()
        self.set_mode(self.mode)

    def recreate(self, args: str = "", binary: str = COUNTER) -> Any:
        return self.run(" ".join(x for x in ("wpp-recreate", args, binary) if x), timeout=600,
                        check=False)

    def assert_continues(self, res: Any) -> list[CounterLine]:
        """The recreated counter prints n+1.. with all checks ok, same pid and checksum."""
        assert res.ok, f"wpp-recreate failed: {res.stderr.strip() or res.stdout.strip()}"
        pids = recreated_pids(res.stdout)
        assert pids, res.stdout
        assert pids[0] == self.pid
        if pids[1] != self.pid:  # only when the pid is taken, and then it says by whom
            assert f"original pid {self.pid} in use by " in res.stdout, res.stdout
            self.pid = self.prog.pid = pids[1]
        assert self.last is not None
        new = self.wait_lines(2, after=self.last.n, timeout=120)
        assert new[0].n == self.last.n + 1, \
            f"counter resumed at {new[0].n}, not {self.last.n + 1}"
        prev = self.last
        for ln in new:
            # the same checks as `hil cycle`: n+1, pid, checksum, self-checks, log offset
            # and the x87/SSE value (only in registers across the sleep) bit for bit
            checks = continuation_checks(prev, ln, pid=self.pid, verify_every=self.verify_every,
                                         buffer=self.buffer_mib > 0, line_len=LOG_LINE)
            assert not failed_checks(checks), \
                f"n={ln.n}: failed {failed_checks(checks)}: {ln.raw} (after {prev.raw})"
            prev = ln
        tracked = self.run(f"cat {TRACKED_PID}").stdout.strip()
        assert tracked == str(self.pid), "the recreated process is not tracked again"
        flag = self.run(f"cat /proc/{self.pid}/process_persistence").stdout
        assert "true" in flag
        self.last = new[-1]
        return new

    def assert_refused(self, res: Any, message: str) -> None:
        assert not res.ok, f"wpp-recreate succeeded but should refuse: {res.stdout}"
        assert res.exit_code == 1
        assert f"wpp-recreate: error: {message}" in res.stderr, res.stderr
        assert "recreated" not in res.stdout
        ps = self.run("pidof wpp-counter", check=False)
        assert not ps.stdout.strip(), f"a counter runs after a refusal: {ps.stdout}"

    def kernel_said(self, message: str) -> int:
        """How often the kernel logged this refusal since boot."""
        return str(self.run("dmesg").stdout).count(f"wpp: recreate refused: {message}")

    def stop(self) -> None:
        self.run(f"kill -9 {self.pid} 2>/dev/null; true", check=False)
