"""hil.bench.guest: the command lines run on the target and the parsers of their output."""

from __future__ import annotations

import pytest

from hil.bench import guest
from hil.core.errors import HilError

SYNTH = """wpp-synth: cycle=1 size_mib=10 ms=10.412
wpp-synth: size_mib=10 cycles=10 total_ms=104.117 per_cycle_ms=10.412 check=00ff00ff00ff00ff
"""

REDIS7 = '''"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms"
"SET","15625.00","2.422","0.168","1.583","6.583"
"LPUSH","27777.78","1.184","0.176","0.743","3.199"
"LPUSH (needed to benchmark LRANGE)","25316.46","1.158","0.152","0.719","4.311"
"LRANGE_100 (first 100 elements)","17857.14","2.045","0.304","2.039","3.967"
"LRANGE_600 (first 600 elements)","4158.00","5.635","0.448","5.287","10.703"
'''

SEVENZIP = """7-Zip (a) 16.02 : Copyright (c) 1999-2016 Igor Pavlov : 2016-05-21
RAM size:   24105 MB (LP),  # CPU hardware threads:   2
Dict     Speed Usage    R/U Rating  |      Speed Usage    R/U Rating
         KiB/s     %   MIPS   MIPS  |      KiB/s     %   MIPS   MIPS

18:       5287    63   7429   4711  |      33370    58   4675   2699
22:       3000   100   2933   2932  |      36741   100   3137   3137
----------------------------------  | ------------------------------
Avr:      5287    63   7429   4711  |      33370    58   4675   2699
Tot:              61   6052   3705
"""


def test_synth_command_and_parse() -> None:
    assert guest.synth(100, 10) == "wpp-synth --size-mib 100 --cycles 10 --quiet"
    assert guest.parse_synth(SYNTH) == pytest.approx(104.117)
    with pytest.raises(HilError, match="no wpp-synth summary"):
        guest.parse_synth("sh: wpp-synth: not found\n")


def test_tracked_commands_set_the_mode_then_use_the_starter() -> None:
    assert guest.run_as("untracked", "x") == "x"
    assert guest.run_as("eager", "wpp-synth") == (
        "echo eager > /sys/module/wpp/parameters/mode && wpp-start wpp-synth")
    assert guest.launch("lazy", "redis-server") == "wpp-start redis-server"
    with pytest.raises(HilError, match="unknown tracking mode"):
        guest.set_mode("sometimes")


def test_redis_server_has_persistence_off_and_stays_in_foreground() -> None:
    cmd = guest.redis_server(6391)
    assert "--save ''" in cmd and "--appendonly no" in cmd and "--daemonize no" in cmd
    bench = guest.redis_benchmark(6391, ("SET", "LRANGE_600"), 1024, 5000)
    assert "-c 50" in bench and "-d 1024" in bench and "-n 5000" in bench
    assert "-t set,lrange_600" in bench and bench.endswith("--csv")


def test_parse_redis_csv_v7_drops_helper_lpush_and_shortens_names() -> None:
    rps = guest.parse_redis_csv(REDIS7)
    assert rps == {"SET": 15625.0, "LPUSH": 27777.78, "LRANGE_100": 17857.14,
                   "LRANGE_600": 4158.0}


def test_parse_redis_csv_old_format_and_garbage() -> None:
    assert guest.parse_redis_csv('"SET","80000.00"\n"GET","90000.50"\n') == {
        "SET": 80000.0, "GET": 90000.5}
    with pytest.raises(HilError, match="no results"):
        guest.parse_redis_csv("Could not connect to Redis at 127.0.0.1:6391\n")


def test_parse_7z_rows_per_dictionary() -> None:
    res = guest.parse_7z(SEVENZIP)
    assert res.compress_kib_s == {18: 5287.0, 22: 3000.0}
    assert res.decompress_kib_s == {18: 33370.0, 22: 36741.0}
    assert guest.sevenzip_bench(22) == "7z b 1 -mmt1 -md22"
    assert guest.sevenzip_bench(18, time_ms=2000) == "7z b 1 -mmt1 -md18 -mtimems=2000"
    with pytest.raises(HilError, match="no result rows"):
        guest.parse_7z("sh: 7z: not found")


def test_stop_kills_given_pids_and_the_tracked_process() -> None:
    cmd = guest.stop([12, 0, 34])
    assert cmd.startswith("kill -9 12 34 ")
    assert "/sys/kernel/wpp/tracked_pid" in cmd
