"""The guest test programs from kernel/tools, run on the host: their self-checks must pass
on an undisturbed run and must FAIL when registers, the buffer or the private mapping are
corrupted behind the process' back (gdb / /proc/PID/mem stand in for a bad restore)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rootfs_build import REPO

from hil.core.timeout import Deadline


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tools")
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "kernel" / "tools"), f"OUT={out}", "-j2"],
        check=True, capture_output=True,
    )
    return out


def fields(line: str) -> dict[str, str]:
    """`wpp-counter: n=3 fp=1.5 ...` -> {"n": "3", "fp": "1.5", ...}."""
    prog, _, rest = line.partition(": ")
    assert prog in ("wpp-counter", "wpp-synth"), line
    return dict(tok.split("=", 1) for tok in rest.split() if "=" in tok)


class Counter:
    """A running wpp-counter whose stdout lines are read one at a time."""

    def __init__(self, exe: Path, tmp: Path, *args: str) -> None:
        self.log = tmp / "counter.log"
        self.state = tmp / "counter.state"
        self.proc = subprocess.Popen(
            [str(exe), "--log-file", str(self.log), "--state-file", str(self.state), *args],
            stdout=subprocess.PIPE, text=True,
        )
        self.start = self.line()
        assert "start" in self.start.split()

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def rest(self) -> tuple[list[dict[str, str]], int]:
        out, _ = self.proc.communicate(timeout=60)
        lines = [fields(x) for x in out.splitlines() if x.startswith("wpp-counter: n=")]
        return lines, self.proc.returncode


@pytest.fixture
def counter(tools: Path, tmp_path: Path) -> Iterator[list[Counter]]:
    started: list[Counter] = []
    yield started
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


def start(started: list[Counter], tools: Path, tmp: Path, *args: str) -> Counter:
    c = Counter(tools / "wpp-counter", tmp, *args)
    started.append(c)
    return c


def harmonic(n: int) -> float:
    s = 0.0
    for i in range(1, n + 1):
        s += 1.0 / i
    return s


def test_counter_undisturbed_run(tools: Path, tmp_path: Path, counter: list[Counter]) -> None:
    mapfile = tmp_path / "map.bin"
    c = start(counter, tools, tmp_path, "--iterations", "4", "--period-ms", "20",
              "--private-map", str(mapfile))
    disk_before = None
    lines, rc = c.rest()
    assert rc == 0
    assert [int(x["n"]) for x in lines] == [1, 2, 3, 4]
    for x in lines:
        n = int(x["n"])
        assert (x["buf"], x["regs"], x["fd"], x["map"], x["state"]) == ("ok",) * 5, x
        assert float(x["fp"]) == harmonic(n)
        assert int(x["off"]) == 64 * n
        assert x["sum"] == lines[0]["sum"]
    assert len({x["mapsum"] for x in lines}) == 4, "the private page must change every iteration"
    log = c.log.read_bytes()
    assert len(log) == 4 * 64 and log.count(b"\n") == 4
    assert c.state.read_text() == f"{4:020d}\n"
    disk_before = mapfile.read_bytes()
    assert len(disk_before) == 64 * 1024
    c2 = start(counter, tools, tmp_path, "--once", "--period-ms", "0",
               "--private-map", str(mapfile))
    lines2, rc2 = c2.rest()
    assert rc2 == 0 and lines2[0]["map"] == "ok"
    assert mapfile.read_bytes() == disk_before, "MAP_PRIVATE writes reached the file"


def gdb_set(pid: int, *assignments: str) -> None:
    cmd = ["gdb", "-nx", "-batch", "-p", str(pid)]
    for a in assignments:
        cmd += ["-ex", f"set {a}"]
    proc = subprocess.run([*cmd, "-ex", "detach"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_counter_detects_lost_registers(
    tools: Path, tmp_path: Path, counter: list[Counter]
) -> None:
    c = start(counter, tools, tmp_path, "--iterations", "2", "--period-ms", "3000")
    # The process is now inside the first raw nanosleep with its values in registers.
    gdb_set(c.proc.pid, "$xmm11.v2_int64[1] = 0", "$r14 = 0")
    lines, rc = c.rest()
    assert rc == 1
    assert lines[0]["regs"] == "BAD:xmm+gpr"
    assert lines[1]["regs"] == "ok", "the next sleep reloads fresh registers"


def test_counter_detects_lost_fp_accumulator(
    tools: Path, tmp_path: Path, counter: list[Counter]
) -> None:
    c = start(counter, tools, tmp_path, "--iterations", "3", "--period-ms", "3000")
    gdb_set(c.proc.pid, "$xmm8.v2_double[0] = 1000")
    lines, rc = c.rest()
    assert rc == 1
    assert float(lines[0]["fp"]) == 1001.0 and lines[0]["regs"] == "BAD:fp"
    assert float(lines[2]["fp"]) != harmonic(3)
    assert all(x["regs"] == "BAD:fp" for x in lines), "a lost accumulator stays visible"


def poke(pid: int, addr: int, data: bytes) -> None:
    fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    try:
        assert os.pwrite(fd, data, addr) == len(data)
    finally:
        os.close(fd)


def test_counter_detects_corrupted_buffer(
    tools: Path, tmp_path: Path, counter: list[Counter]
) -> None:
    c = start(counter, tools, tmp_path, "--iterations", "2", "--period-ms", "1500")
    addr = int(fields(c.start)["buf_addr"], 16)
    poke(c.proc.pid, addr + 12345 * 8, b"\xde\xad\xbe\xef\xde\xad\xbe\xef")
    lines, rc = c.rest()
    assert rc == 1
    assert [x["buf"] for x in lines] == ["BAD", "BAD"]
    assert lines[0]["sum"] != fields(c.start)["sum"]


def test_counter_detects_private_map_divergence(
    tools: Path, tmp_path: Path, counter: list[Counter]
) -> None:
    mapfile = tmp_path / "map.bin"
    c = start(counter, tools, tmp_path, "--iterations", "2", "--period-ms", "1500",
              "--private-map", str(mapfile))
    base = next(
        int(line.split("-")[0], 16)
        for line in Path(f"/proc/{c.proc.pid}/maps").read_text().splitlines()
        if line.endswith(str(mapfile))
    )
    poke(c.proc.pid, base + 8192, b"\x01\x02\x03\x04")
    lines, rc = c.rest()
    assert rc == 1
    assert lines[0]["map"] == "BAD"


def test_counter_rejects_bad_arguments(tools: Path) -> None:
    proc = subprocess.run([str(tools / "wpp-counter"), "--period-ms", "soon"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "wpp-counter: error: --period-ms needs a non-negative number, got 'soon'"
    )


def test_synth_reports_cycles_and_total(tools: Path) -> None:
    deadline = Deadline(60)
    proc = subprocess.run([str(tools / "wpp-synth"), "--size-mib", "4", "--cycles", "3"],
                          capture_output=True, text=True, timeout=deadline.remaining, check=True)
    lines = [fields(x) for x in proc.stdout.splitlines()]
    assert [x["cycle"] for x in lines[:3]] == ["1", "2", "3"]
    summary = lines[3]
    assert (summary["size_mib"], summary["cycles"]) == ("4", "3")
    total = float(summary["total_ms"])
    assert total == pytest.approx(sum(float(x["ms"]) for x in lines[:3]), abs=0.01)
    assert float(summary["per_cycle_ms"]) == pytest.approx(total / 3, abs=0.01)
    assert total > 0


def test_synth_rejects_zero_cycles(tools: Path) -> None:
    proc = subprocess.run([str(tools / "wpp-synth"), "--cycles", "0"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "--cycles needs a positive number" in proc.stderr
