"""Every command line the benchmarks run on the target, and the parsers of their output.

The kernel's user interface (the tracking-mode parameter, the starter that runs a
program tracked, the power-loss trigger) is defined by the kernel work and may still
move: it is spelled here and nowhere else in `hil.bench`, next to the parsers of what
the guest programs print, so an interface change is a one-file edit with unit tests.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from dataclasses import dataclass

from hil.core.errors import HilError
from hil.wpp.experiment import MODE_PARAM, MODES, TRIGGER

STARTER = "wpp-start"  # runs its arguments as the (single) tracked process
SYNTH = "wpp-synth"
UNTRACKED = "untracked"
VARIANTS = (UNTRACKED, *MODES)
MODES_BY_COST = ("lazy", "batched", "eager")  # the order a reader compares them in
assert sorted(MODES_BY_COST) == sorted(MODES), "a tracking mode is missing from MODES_BY_COST"


ALLOW_THREADS = "/sys/module/wpp/parameters/allow_threads"


def allow_threads(on: bool) -> str:
    """Let a tracked process start threads (redis-server 7 runs background-job threads).

    With it on, the kernel persists every thread at power loss and the recreator brings
    each one back with its tid (kernel/README.md, Recreation); off, the default, a tracked
    process that starts a thread gets EPERM.
    """
    return f"echo {1 if on else 0} > {ALLOW_THREADS}"


def set_mode(mode: str) -> str:
    """Select the tracking mode of the next tracked process (refused while one runs)."""
    if mode not in MODES:
        raise HilError(f"unknown tracking mode {mode!r}", f"use one of {', '.join(MODES)}")
    return f"echo {mode} > {MODE_PARAM}"


def run_as(variant: str, command: str) -> str:
    """`command` untracked, or set the mode and start it tracked in that mode."""
    if variant == UNTRACKED:
        return command
    return f"{set_mode(variant)} && {STARTER} {command}"


def launch(variant: str, command: str) -> str:
    """`command` itself, or under the starter (the mode must be set first: `set_mode`)."""
    return command if variant == UNTRACKED else f"{STARTER} {command}"


def background(command: str, out: str) -> str:
    """Start one program detached from the SSH session; prints its pid.

    The guest's busybox has no ``nohup``: a subshell that ignores SIGHUP and ``exec``s
    the program keeps ``$!`` equal to the program's pid.
    """
    return f"( trap '' HUP; exec {command} ) > {out} 2>&1 < /dev/null & echo $!"


def stop(pids: list[int]) -> str:
    """Kill programs (and whatever is tracked) and wait until they are gone.

    SIGKILL: a tracked process the power-loss procedure halted would keep a SIGTERM
    pending forever (and the single tracking slot with it).
    """
    ids = " ".join(str(int(p)) for p in pids if p > 0)
    return (f"kill -9 {ids} 2>/dev/null; t=$({tracked_pid()}); [ \"$t\" -gt 0 ] && kill -9 $t; "
            f"for i in $(seq 50); do kill -0 {ids} 2>/dev/null || break; sleep 0.1; done; true")


def wpp_support_check() -> str:
    """Exits 0 when the running kernel and guest image can track a process."""
    return f"test -e {TRIGGER} && test -e {MODE_PARAM} && command -v {STARTER} >/dev/null"


def tracked_pid() -> str:
    return "cat /sys/kernel/wpp/tracked_pid 2>/dev/null || echo 0"


# -- synthetic ---------------------------------------------------------------------------

def synth(size_mib: int, cycles: int) -> str:
    return f"{SYNTH} --size-mib {int(size_mib)} --cycles {int(cycles)} --quiet"


_SYNTH_SUMMARY = re.compile(
    r"wpp-synth: size_mib=(?P<size>\d+) cycles=(?P<cycles>\d+) total_ms=(?P<total>[\d.]+)")


def parse_synth(text: str) -> float:
    """``total_ms`` of wpp-synth's summary line (the mmap/fill/munmap loop only)."""
    found = list(_SYNTH_SUMMARY.finditer(text))
    if not found:
        raise HilError(f"no wpp-synth summary line in its output: {text.strip()[-200:]!r}",
                       "is wpp-synth in the guest image (kernel/tools)?")
    return float(found[-1]["total"])


# -- redis -------------------------------------------------------------------------------

REDIS_TESTS = ("SET", "LPUSH", "LRANGE_100", "LRANGE_300", "LRANGE_600")


def redis_server(port: int) -> str:
    """A redis-server with persistence off, in the foreground (a daemonizing fork would
    leave the tracked process behind)."""
    return (f"redis-server --port {int(port)} --bind 127.0.0.1 --save '' --appendonly no "
            f"--daemonize no")


def redis_ping(port: int) -> str:
    return f"redis-cli -p {int(port)} ping"


def redis_shutdown(port: int) -> str:
    return f"redis-cli -p {int(port)} shutdown nosave"


def redis_benchmark(port: int, tests: tuple[str, ...], payload: int, requests: int,
                    clients: int = 50) -> str:
    names = ",".join(t.lower() for t in tests)
    return (f"redis-benchmark -p {int(port)} -c {int(clients)} -n {int(requests)} "
            f"-d {int(payload)} -t {shlex.quote(names)} --csv")


def parse_redis_csv(text: str) -> dict[str, float]:
    """Requests per second per test from ``redis-benchmark --csv`` (7.x has a header
    row and latency columns; 5/6 print ``"TEST","rps"`` only). The LPUSH run that
    redis-benchmark adds to fill the list for LRANGE is dropped; ``LRANGE_100 (first 100
    elements)`` becomes ``LRANGE_100``."""
    out: dict[str, float] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or row[0] == "test":
            continue
        name = row[0].strip()
        if "needed to benchmark" in name:
            continue
        name = name.split(" ", 1)[0]
        try:
            out[name] = float(row[1])
        except ValueError:
            continue
    if not out:
        raise HilError(f"no results in redis-benchmark's CSV output: {text.strip()[-200:]!r}",
                       "is redis-server reachable on the benchmark port?")
    return out


# -- 7z (neighbours) ---------------------------------------------------------------------

def sevenzip_bench(dict_log2: int, passes: int = 1, time_ms: int | None = None) -> str:
    """7-Zip's single-threaded LZMA benchmark up to a 2**dict_log2 dictionary.

    `time_ms` shortens each compress and decompress test (7-Zip's ``timems`` property;
    its default is a few seconds of work at the CPU speed it measures first): the quick
    profile runs 7z five times, and a default run takes minutes under TCG.
    """
    timed = f" -mtimems={int(time_ms)}" if time_ms else ""
    return f"7z b {int(passes)} -mmt1 -md{int(dict_log2)}{timed}"


_7Z_ROW = re.compile(r"^\s*(?P<d>\d+):\s+(?P<cs>\d+)\s+\d+\s+\d+\s+(?P<cr>\d+)\s+\|"
                     r"\s+(?P<ds>\d+)\s+\d+\s+\d+\s+(?P<dr>\d+)\s*$")


@dataclass(frozen=True)
class SevenZip:
    """KiB/s per dictionary size (log2) for compression and decompression."""

    compress_kib_s: dict[int, float]
    decompress_kib_s: dict[int, float]


def parse_7z(text: str) -> SevenZip:
    comp: dict[int, list[float]] = {}
    decomp: dict[int, list[float]] = {}
    for line in text.splitlines():
        m = _7Z_ROW.match(line)
        if m:
            comp.setdefault(int(m["d"]), []).append(float(m["cs"]))
            decomp.setdefault(int(m["d"]), []).append(float(m["ds"]))
    if not comp:
        raise HilError(f"no result rows in 7z's benchmark output: {text.strip()[-200:]!r}",
                       "is p7zip in the guest image?")
    return SevenZip({d: sum(v) / len(v) for d, v in comp.items()},
                    {d: sum(v) / len(v) for d, v in decomp.items()})




def pinned(cpu: int | None, command: str) -> str:
    """`command` bound to one CPU (busybox ``taskset``; the affinity survives the exec of
    the starter and of the program), or unchanged when `cpu` is None."""
    return command if cpu is None else f"taskset -c {int(cpu)} {command}"


NPROC = "nproc"


def parse_nproc(text: str) -> int:
    """The guest's CPU count from ``nproc`` (1 when it printed nothing usable)."""
    words = text.split()
    return int(words[-1]) if words and words[-1].isdigit() and int(words[-1]) > 0 else 1


# -- guest copy bandwidth (persist) ------------------------------------------------------

MEMCPY = "wpp-memcpy"
MEMCPY_METHODS = ("memcpy", "movsb", "movsq")


def memcpy_probe(size_mib: int, reps: int) -> str:
    """Every copy routine of wpp-memcpy over two pre-touched `size_mib` MiB buffers."""
    return f"{MEMCPY} --size-mib {int(size_mib)} --reps {int(reps)} --method all"


_MEMCPY_LINE = re.compile(r"wpp-memcpy: method=(?P<m>\w+) size_mib=\d+ reps=\d+ "
                          r"gib_s=(?P<v>[\d.,]+)")


def parse_memcpy(text: str) -> dict[str, list[float]]:
    """GiB/s of every timed copy, per method (``memcpy``, ``movsb``, ``movsq``)."""
    out: dict[str, list[float]] = {}
    for m in _MEMCPY_LINE.finditer(text):
        out.setdefault(m["m"], []).extend(float(v) for v in m["v"].split(",") if v)
    if "memcpy" not in out:
        raise HilError(f"no wpp-memcpy result line in its output: {text.strip()[-200:]!r}",
                       "is wpp-memcpy in the guest image (kernel/tools)?")
    return out


# -- recreate (the kernel's report) ------------------------------------------------------

KERNEL_RECREATE_LOG = "dmesg | grep 'wpp: recreated pid' | tail -n 1"

_RECREATED = re.compile(
    r"wpp: recreated pid \d+ .*?: \d+ regions, (?P<pages>\d+) pages .*?"
    r"fill (?P<fill>\d+) (?P<fu>ms|us) \(get_pages (?P<get>\d+) (?P<gu>ms|us)\)")


@dataclass(frozen=True)
class Recreated:
    """What the kernel's ``recreated pid`` line says about bringing the pages back."""

    pages: int  # pages in the snapshot, every one fetched with GET_PAGES
    fill_ms: float  # GET_PAGES calls + putting the pages into the process (zeros skipped)
    get_pages_ms: float  # the GET_PAGES calls alone (SMIs: device -> the pages' frames)


def parse_recreated(text: str) -> Recreated:
    """The last ``wpp: recreated pid ...`` line of the kernel log (times in ms or us)."""
    found = list(_RECREATED.finditer(text))
    if not found:
        raise HilError(f"no 'wpp: recreated pid' line with fill times in the kernel log: "
                       f"{text.strip()[-200:]!r}", "dmesg on the target shows the recreator's "
                       "report; has the kernel's log line changed?")
    m = found[-1]

    def ms(v: str, unit: str) -> float:
        return float(v) / (1000.0 if unit == "us" else 1.0)

    return Recreated(int(m["pages"]), ms(m["fill"], m["fu"]), ms(m["get"], m["gu"]))
