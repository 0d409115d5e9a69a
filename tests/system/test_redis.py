"""A real workload survives a power loss: redis-server 7, persistence off (no RDB, no AOF).

redis-server runs tracked (``wpp-start``) with ``wpp.allow_threads=1``: it has 4 background
threads besides the main one, a pipe (its module pipe, registered in epoll), an epoll
instance, a listening TCP socket and one socket per client. After trigger -> power cut ->
boot -> ``wpp-recreate`` every thread is back with its tid, the pipe, listening socket and
epoll instance are made again at the same fds (client connections come back hung up, so
redis drops them), and the whole dataset comes back only through the firmware's snapshot:
the guest's RAM is gone and redis writes nothing to disk. Its log (stdout) is on the
persistent disk (``/data/wpp-system``), where the recreated process reopens it at its
saved offset.

On the twin the snapshot is also checked offline before recreating (``hil snapshot inspect
--json`` on the persistent-device file): complete, and its process control block holds
every thread and the epoll interest list.
"""

from __future__ import annotations

import random
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from twin_only import inspect_cli, optional_twin

from hil.bench import guest
from hil.core.timeout import wait_for
from hil.wpp import snapshot
from hil.wpp.session import WppSession

PORT = 6399
REDIS = "/usr/bin/redis-server"
ALLOW = "/sys/module/wpp/parameters/allow_threads"
DATA = "/data/wpp-system"  # on the persistent disk (the suite's convention)
KEYS = 10_000
KINDS = ("string", "hash", "list", "set", "zset")

# kernel/wpp/wpp_pcb.h: header offsets
PCB_MAGIC = 0x42435057
PCB_THREADS_COUNT = 1524
PCB_EPITEMS_COUNT = 1536

# A canonical digest of the whole dataset: every key in sorted order with its type and
# its value in a canonical form (hash fields and set members sorted, zsets by score).
DIGEST_LUA = r"""
local keys = redis.call('KEYS', '*')
table.sort(keys)
local out = {}
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  local v
  if t == 'string' then
    v = redis.call('GET', k)
  elseif t == 'hash' then
    local h = redis.call('HGETALL', k)
    local kv = {}
    for i = 1, #h, 2 do kv[#kv + 1] = h[i] .. '=' .. h[i + 1] end
    table.sort(kv)
    v = table.concat(kv, ',')
  elseif t == 'list' then
    v = table.concat(redis.call('LRANGE', k, 0, -1), ',')
  elseif t == 'set' then
    local m = redis.call('SMEMBERS', k)
    table.sort(m)
    v = table.concat(m, ',')
  elseif t == 'zset' then
    v = table.concat(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES'), ',')
  else
    v = '?'
  end
  out[#out + 1] = k .. '\0' .. t .. '\0' .. v
end
return {#keys, redis.sha1hex(table.concat(out, '\n'))}
"""

# Self-consistency of a dataset redis-benchmark wrote (-d 100): every string value and
# every list element has the payload's size; returns {keys, strings, lists, bad}.
BENCH_CHECK_LUA = r"""
local keys = redis.call('KEYS', '*')
local strings, lists, bad = 0, 0, 0
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  if t == 'string' then
    strings = strings + 1
    if string.len(redis.call('GET', k)) ~= tonumber(ARGV[1]) then bad = bad + 1 end
  elseif t == 'list' then
    lists = lists + 1
    for _, e in ipairs(redis.call('LRANGE', k, 0, -1)) do
      if string.len(e) ~= tonumber(ARGV[1]) then bad = bad + 1 end
    end
  else
    bad = bad + 1
  end
end
return {#keys, strings, lists, bad}
"""


def advance_pids(target: Any, beyond: int) -> None:
    """Use up pids until the next one is above `beyond`: after a boot the guest hands out
    low pids in order, and one of them (the recreator's own, say) could be a pid or
    thread id the persisted process needs back."""
    target.shell.run(f"while [ \"$(sh -c 'echo $$')\" -le {int(beyond)} ]; do :; done",
                     timeout=120)


def _resp(*args: str) -> str:
    """One command in the redis protocol (what ``redis-cli --pipe`` sends as is)."""
    out = [f"*{len(args)}\r\n"]
    for a in args:
        out.append(f"${len(a.encode())}\r\n{a}\r\n")
    return "".join(out)


def dataset(seed: int = 7) -> tuple[str, dict[str, int]]:
    """10,000 keys, 2,000 of each type, with random contents; the RESP text and counts."""
    rnd = random.Random(seed)

    def word() -> str:
        return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in
                       range(rnd.randint(1, 24)))

    cmds = []
    counts = dict.fromkeys(KINDS, 0)
    for i in range(KEYS):
        kind = KINDS[i % len(KINDS)]
        key = f"{kind}:{i}"
        if kind == "string":
            cmds.append(_resp("SET", key, word()))
        elif kind == "hash":
            args = [x for f in range(rnd.randint(1, 6)) for x in (f"f{f}", word())]
            cmds.append(_resp("HSET", key, *args))
        elif kind == "list":
            cmds.append(_resp("RPUSH", key, *[word() for _ in range(rnd.randint(1, 8))]))
        elif kind == "set":
            cmds.append(_resp("SADD", key, *[word() for _ in range(rnd.randint(1, 8))]))
        else:
            args = [x for m in range(rnd.randint(1, 6))
                    for x in (str(rnd.randint(-1000, 1000) / 8), f"m{m}{word()}")]
            cmds.append(_resp("ZADD", key, *args))
        counts[kind] += 1
    return "".join(cmds), counts


class Redis:
    """redis-server tracked on the target, driven with redis-cli."""

    def __init__(self, target: Any, tmp: Path) -> None:
        self.target = target
        self.tmp = tmp
        self.wpp = WppSession(target, out_dir=DATA)
        self.run("p=$(cat /sys/kernel/wpp/tracked_pid); [ $p = 0 ] || kill -9 $p; "
                 "kill -9 $(pidof redis-server redis-benchmark) 2>/dev/null; true")
        wait_for(lambda: self.run("cat /sys/kernel/wpp/tracked_pid").stdout.strip() == "0",
                 30, "no tracked process")
        self.run(f"echo 1 > {ALLOW}")
        self.run(f"mkdir -p {DATA} && rm -f {DATA}/wpp-redis.out")
        # on the disk: the scripts are needed after the power cut too
        self.put(f"{DATA}/digest.lua", DIGEST_LUA)
        self.put(f"{DATA}/benchcheck.lua", BENCH_CHECK_LUA)
        self.run("sync")  # written back before any power cut
        self.prog = self.wpp.start(guest.redis_server(PORT), name="redis")
        self.pid = self.prog.pid
        wait_for(self.ping, 60, "redis-server answering PING")

    def run(self, cmd: str, timeout: float = 120, check: bool = True) -> Any:
        return self.target.shell.run(cmd, timeout=timeout, check=check)

    def put(self, remote: str, text: str) -> None:
        local = self.tmp / Path(remote).name
        local.write_text(text)
        self.target.shell.put(local, remote)

    def cli(self, args: str, check: bool = True) -> str:
        return str(self.run(f"redis-cli -p {PORT} {args}", check=check).stdout.strip())

    def ping(self) -> bool:
        return self.run(guest.redis_ping(PORT), check=False).stdout.strip() == "PONG"

    def digest(self) -> tuple[int, str]:
        out = self.cli(f"--eval {DATA}/digest.lua").split()
        assert len(out) == 2, f"digest script printed {out}"
        return int(out[0]), out[1]

    def bench_check(self) -> tuple[int, ...]:
        """(keys, strings, lists, bad) of a redis-benchmark dataset (BENCH_CHECK_LUA)."""
        out = self.cli(f"--eval {DATA}/benchcheck.lua , 100").split()
        assert len(out) == 4, f"check script printed {out}"
        return tuple(int(x) for x in out)

    def threads(self) -> set[int]:
        return {int(t) for t in self.run(f"ls /proc/{self.pid}/task").stdout.split()}

    def clients(self) -> int:
        return len([ln for ln in self.cli("client list").splitlines() if ln.startswith("id=")])

    def persist_and_recreate(self, threads: set[int]) -> str:
        self.persist_and_boot(threads)
        return self.recreate(threads)

    def persist_and_boot(self, threads: set[int]) -> None:
        """Trigger, cut mains, check the snapshot offline, boot."""
        self.wpp.trigger()
        self.target.power_cut()
        twin = optional_twin(self.target, "reading the redis snapshot offline")
        if twin is not None:
            self.check_snapshot(twin.pdev, threads)
        self.target.boot()

    @staticmethod
    def check_snapshot(pdev: Path, threads: set[int]) -> None:
        rc, report = inspect_cli(pdev)
        assert rc == 0 and report["verdict"] == "complete", report
        assert report["marker_state"] == "complete" and report["page_crc_ok"] is True, report
        with snapshot.SnapshotImage(pdev) as img:
            meta = img.metadata()
        magic, = struct.unpack_from("<I", meta, 0)
        nthreads, = struct.unpack_from("<I", meta, PCB_THREADS_COUNT)
        nepoll, = struct.unpack_from("<I", meta, PCB_EPITEMS_COUNT)
        assert magic == PCB_MAGIC
        assert nthreads + 1 == len(threads), "the PCB does not hold every thread"
        assert nepoll >= 2, "the epoll interest list (module pipe, listener) was not saved"

    def recreate(self, threads: set[int]) -> str:
        self.run(f"echo 1 > {ALLOW}")
        advance_pids(self.target, max(threads))
        line = self.wpp.recreate(REDIS)
        assert f"pid {self.pid} as pid {self.pid} " in line, line
        assert f"{len(threads)} threads" in line, line
        return line

    def assert_back(self, threads: set[int]) -> None:
        """Answers, same threads, tracked again, old connections dropped, writes work."""
        wait_for(self.ping, 30, "the recreated redis-server answering PING")
        assert self.threads() == threads
        tracked = self.run("cat /sys/kernel/wpp/tracked_pid").stdout.strip()
        assert tracked == str(self.pid), "the recreated redis is not tracked again"
        wait_for(lambda: self.clients() == 1, 30, "the connections of before the power "
                 "loss dropped (only this redis-cli connected)")
        assert self.cli("set after:recreate yes") == "OK"
        assert self.cli("get after:recreate") == "yes"

    def stop(self) -> None:
        self.run(f"kill -9 {self.pid} $(pidof redis-benchmark) 2>/dev/null; echo 0 > {ALLOW}; true",
                 check=False)


@pytest.fixture
def redis(target: Any, tmp_path: Path) -> Any:
    r = Redis(target, tmp_path)
    yield r
    if target.is_on():
        r.stop()


def test_redis_dataset_survives_power_loss(redis: Redis) -> None:
    """10,000 keys of every type come back bit-exact; an idle client's connection at the
    power loss is dropped cleanly; redis keeps answering and writing."""
    text, counts = dataset()
    redis.put("/tmp/redis-load.resp", text)
    out = redis.run(f"redis-cli -p {PORT} --pipe < /tmp/redis-load.resp").stdout
    assert re.search(rf"errors: 0, replies: {KEYS}\b", out), out
    assert redis.cli("dbsize") == str(KEYS)
    assert all(n == KEYS // len(KINDS) for n in counts.values())
    before = redis.digest()
    assert before[0] == KEYS
    # a client connected at the power loss (its peer is gone after the cut)
    redis.run(f"( trap '' HUP; exec redis-cli -p {PORT} subscribe wpp-news ) "
              "> /dev/null 2>&1 < /dev/null &")
    wait_for(lambda: redis.clients() == 2, 30, "the subscriber connected")
    threads = redis.threads()
    assert len(threads) > 1, "redis-server 7 runs background threads"

    redis.persist_and_boot(threads)
    # its port taken by another server: the listening socket cannot be made again
    redis.run(f"redis-server --port {PORT} --bind 127.0.0.1 --save '' --appendonly no "
              "--daemonize yes")
    advance_pids(redis.target, max(threads))
    res = redis.run(f"echo 1 > {ALLOW}; wpp-recreate {REDIS}", check=False)
    assert res.exit_code == 1, res.stdout
    assert re.search(r"wpp-recreate: error: socket fd \d+: bind to its saved address: "
                     r"Address (already )?in use", res.stderr), res.stderr
    assert "wpp-recreate: recreate refused: socket fd" in redis.run("dmesg").stdout
    redis.run(guest.redis_shutdown(PORT), check=False)
    wait_for(lambda: not redis.run("pidof redis-server", check=False).stdout.strip(), 30,
             "the other redis-server gone")
    line = redis.recreate(threads)
    print(line)
    redis.assert_back(threads)
    assert redis.cli("dbsize") == str(KEYS + 1)
    assert redis.cli("del after:recreate") == "1"
    assert redis.digest() == before, "the dataset changed across the power loss"
    assert redis.cli("hget hash:1 f0") != ""
    print(redis.run("dmesg | grep 'wpp: recreated'").stdout.strip())


def test_redis_under_benchmark_load_survives_power_loss(redis: Redis) -> None:
    """redis-benchmark (50 clients, SET/LPUSH, 100-byte values) runs at the power loss:
    afterwards redis answers, its dataset is self-consistent and a new load runs."""
    # -l: SET, LPUSH, SET, ... until the power goes
    redis.run(f"( trap '' HUP; exec redis-benchmark -p {PORT} -c 50 -n 2000 -r 5000 "
              "-d 100 -t set,lpush -l -q ) > /dev/null 2>&1 < /dev/null &")
    wait_for(lambda: redis.bench_check()[2] > 0, 120, "redis-benchmark's LPUSH run")
    wait_for(lambda: redis.clients() >= 50, 60, "redis-benchmark's 50 clients connected")
    threads = redis.threads()

    line = redis.persist_and_recreate(threads)
    print(line)
    redis.assert_back(threads)
    assert redis.cli("del after:recreate") == "1"
    keys, strings, lists, bad = redis.bench_check()
    assert keys > 100 and strings > 0 and lists > 0, (keys, strings, lists)
    assert bad == 0, f"{bad} values of the wrong size or type"
    assert redis.digest() == redis.digest()  # stable: nothing writes any more
    out = redis.run(guest.redis_benchmark(PORT, ("SET", "LPUSH"), 100, 2000, clients=10))
    rates = guest.parse_redis_csv(out.stdout)
    assert rates and all(v > 0 for v in rates.values()), out.stdout


def test_redis_timers_continue_after_recreation(redis: Redis) -> None:
    """Issue 13 (clocks): a recreated redis-server's cron keeps its pace. Found on the twin:
    keys with a 1 s expiry were still there 6 s after recreation and SIGTERM took 98 s, as
    redis' timers (CLOCK_MONOTONIC) lay in the new boot's future by the old uptime minus
    the new one. With the clocks continued (a time namespace), keys set after recreation
    with a 1 s expiry are expired by the cron (active expiry, never read again) and
    SIGTERM ends the server at once."""
    up = lambda: float(redis.run("cut -d' ' -f1 /proc/uptime").stdout.strip())  # noqa: E731
    wait_for(lambda: up() > 60, 90, "an old boot older than the next one will be")
    threads = redis.threads()
    redis.persist_and_boot(threads)
    line = redis.recreate(threads)
    assert up() + 20 < 60, "the new boot is not younger than the old one"
    redis.assert_back(threads)
    base = int(redis.cli("dbsize"))
    # set and counted in one command: a round trip to the twin can take a second
    out = redis.run(f"redis-cli -p {PORT} eval \"for i=1,100 do redis.call('SET','exp:'..i,"
                    f"'v','PX',1000) end\" 0; redis-cli -p {PORT} dbsize").stdout.split()
    assert int(out[-1]) == base + 100, out
    t0 = time.monotonic()
    wait_for(lambda: int(redis.cli("dbsize")) == base, 8,
             "redis' cron expiring keys with a 1 s expiry (active expiry)")
    print(f"{line}\nkeys with a 1 s expiry gone after {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    redis.run(f"kill -TERM {redis.pid}")
    wait_for(lambda: not redis.run(f"kill -0 {redis.pid}", check=False).ok, 10,
             "redis-server ending on SIGTERM")
    print(f"SIGTERM honoured after {time.monotonic() - t0:.1f} s")
