"""Redis under WPP (thesis 6.2.2): redis-benchmark, 50 clients, tracked vs untracked server.

The server runs in the foreground of a background shell with persistence off, so the
only memory work is Redis' own. Each repetition restarts the server per variant; the
ratio is requests per second tracked over untracked, per test and payload size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hil.bench import guest, remote
from hil.bench.results import BenchReport, Measurement
from hil.core.errors import HilError
from hil.core.timeout import wait_for

BENCH = "redis"
PORT = 6391
OUT = "/tmp/bench-redis.out"
READY_TIMEOUT = 60.0  # seconds for redis-server to answer PING (TCG start: ~1 s)
# Seed (fig. 6.2): no significant change while the payload needs no new memory, a clear
# drop for LRANGE_600 (frequent reallocations). The thesis gives no numbers.
SEED_NOTE = {"LRANGE_600": "clear drop"}
SEED_DEFAULT = "~1x (no sig. change)"
# redis-server 7 starts background-job threads; a WPP kernel that refuses threads in the
# tracked process makes it exit with this line.
NO_THREADS = "Can't initialize Background Jobs"
NO_THREADS_REASON = ("tracked redis-server exits at start (\"Can't initialize Background "
                     "Jobs\"): the WPP kernel refuses threads in a tracked process")


def _wait_ready(target: Any, pid: int) -> None:
    """Wait for PONG; give up at once when the server has exited (its output says why)."""
    exited = False

    def pong() -> bool:
        nonlocal exited
        res = target.shell.run(f"{guest.redis_ping(PORT)} || kill -0 {pid}", timeout=30,
                               check=False)
        exited = not res.ok
        return exited or "PONG" in str(res.stdout)

    try:
        wait_for(pong, READY_TIMEOUT, "redis-server to answer PING")
        if not exited:
            return
        what = f"redis-server (pid {pid}) exited before answering PING"
    except HilError as exc:
        what = str(exc)
    log = target.shell.run(f"tail -3 {OUT}", timeout=30, check=False).stdout
    raise HilError(f"{what}; its output: {' | '.join(str(log).strip().splitlines())}",
                   "see the guest's redis-server output")


def run(target: Any, report: BenchReport, *, tests: Sequence[str], payloads: Sequence[int],
        requests: int, reps: int, variants: Sequence[str], wpp_missing: str | None = None,
        step: Callable[[str], None] = lambda _m: None) -> None:
    rows: dict[tuple[str, int, str], Measurement] = {}
    for test in tests:
        for d in payloads:
            for v in variants:
                tracked = v != guest.UNTRACKED
                rows[test, d, v] = report.add(Measurement(
                    BENCH, f"{test} -d {d}", v, "throughput", "req/s",
                    baseline=guest.UNTRACKED if tracked else None, higher_is_better=True,
                    seed_note=SEED_NOTE.get(test, SEED_DEFAULT) if tracked else "",
                    skipped=wpp_missing if tracked else None))
    for rep in range(1, reps + 1):
        for v in variants:
            if all(rows[t, d, v].skipped for t in tests for d in payloads):
                continue
            step(f"redis {v} (run {rep}/{reps})")
            pid = 0
            tracked = v != guest.UNTRACKED
            try:
                if tracked:  # a kernel without the switch refuses: NO_THREADS below
                    target.shell.run(guest.allow_threads(True), timeout=30, check=False)
                pid = remote.start(target, v, guest.redis_server(PORT), OUT)
                _wait_ready(target, pid)
                for d in payloads:
                    out = remote.run(target, guest.redis_benchmark(PORT, tuple(tests), d,
                                                                   requests), timeout=900)
                    rps = guest.parse_redis_csv(out)
                    for t in tests:
                        if t in rps:
                            rows[t, d, v].samples.append(rps[t])
            except HilError as exc:
                limitation = v != guest.UNTRACKED and NO_THREADS in str(exc)
                for t in tests:
                    for d in payloads:
                        m = rows[t, d, v]
                        m.skipped = m.skipped or (NO_THREADS_REASON if limitation else str(exc))
                        m.limitation = m.limitation or limitation
            finally:
                if pid:
                    target.shell.run(guest.redis_shutdown(PORT), timeout=30, check=False)
                    remote.stop(target, [pid])
                if tracked:
                    target.shell.run(guest.allow_threads(False), timeout=30, check=False)
