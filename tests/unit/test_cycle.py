"""Pure logic of the power-loss cycle: parsing wpp-counter lines and judging continuation."""

from __future__ import annotations

from hil.wpp.experiment import (
    CycleReport,
    Phase,
    continuation_checks,
    format_table,
    harmonic,
    parse_counter,
    recreated_pids,
)

# fp is printed with %.17g: the exact double of the harmonic sum after n iterations
BEFORE = (f"wpp-counter: n=41 pid=97 sum=00000000deadbeef buf=ok fp={harmonic(41):.17g} "
          "regs=ok xmm=0000000000000029 off=2624 fd=ok map=ok mapsum=1 state=ok")
AFTER = (f"wpp-counter: n=42 pid=97 sum=00000000deadbeef buf=ok fp={harmonic(42):.17g} "
         "regs=ok xmm=000000000000002a off=2688 fd=ok map=ok mapsum=1 state=ok")


def test_parse_ignores_other_lines() -> None:
    text = f"wpp-counter: start pid=97 seed=1\n{BEFORE}\nnoise\n{AFTER}\nwpp-counter: done n=42\n"
    lines = parse_counter(text)
    assert [x.n for x in lines] == [41, 42]
    assert lines[0].get("sum") == "00000000deadbeef" and lines[1].healthy


def test_continuation_accepts_exact_next_value() -> None:
    b, a = parse_counter(BEFORE + "\n" + AFTER)
    checks = continuation_checks(b, a)
    assert all(checks.values()), checks


def test_continuation_rejects_gap_lost_registers_and_offset() -> None:
    b = parse_counter(BEFORE)[0]
    gap = parse_counter(AFTER.replace("n=42", "n=43"))[0]
    assert not continuation_checks(b, gap)["counter continues at n+1"]
    regs = parse_counter(AFTER.replace("regs=ok", "regs=BAD:xmm"))[0]
    assert not continuation_checks(b, regs)["registers and FPU/SIMD intact"]
    off = parse_counter(AFTER.replace("off=2688", "off=0"))[0]
    assert not continuation_checks(b, off)["file offset intact"]
    buf = parse_counter(AFTER.replace("sum=00000000deadbeef", "sum=0000000000000001"))[0]
    assert not continuation_checks(b, buf)["buffer checksum intact"]
    assert not parse_counter(AFTER.replace("buf=ok", "buf=BAD"))[0].healthy


def test_report_ok_and_table() -> None:
    b, a = parse_counter(BEFORE + "\n" + AFTER)
    good = CycleReport(1, "eager", b, a, [Phase("persist", 0.5, 1200), Phase("boot", 6.1)],
                       continuation_checks(b, a))
    bad = CycleReport(2, "lazy", b, None, [Phase("persist", 0.4)], {}, error="boot timed out")
    assert good.ok and not bad.ok
    table = format_table([good, bad])
    assert "persist" in table and "fw 1.2 ms" in table and "FAILED" in table and "OK" in table
    assert good.to_json()["phases"][0]["firmware_us"] == 1200


def test_continuation_checks_pid_and_fpu_like_the_suite() -> None:
    """The one set of checks is the stricter one the system suite used: a recreated
    process under another pid, or an FPU value off by one ulp, is not a continuation."""
    b = parse_counter(BEFORE)[0]
    other = parse_counter(AFTER.replace("pid=97", "pid=98"))[0]
    assert not continuation_checks(b, other)["same process (pid)"]
    # ...unless wpp-recreate said the original pid was taken and gave it this one
    assert continuation_checks(b, other, pid=98)["same process (pid)"]
    drift = f"{harmonic(42) + 2 ** -50:.17g}"
    fpu = parse_counter(AFTER.replace(f"fp={harmonic(42):.17g}", f"fp={drift}"))[0]
    assert not continuation_checks(b, fpu)["registers and FPU/SIMD intact"]


def test_buf_skip_only_counts_when_the_run_verifies_every_k() -> None:
    b = parse_counter(BEFORE)[0]
    skip = parse_counter(AFTER.replace("buf=ok", "buf=skip"))[0]
    assert not continuation_checks(b, skip)["buffer checksum intact"]
    assert continuation_checks(b, skip, verify_every=4)["buffer checksum intact"]
    na = parse_counter(AFTER.replace("buf=ok", "buf=na"))[0]
    assert not continuation_checks(b, na)["buffer checksum intact"]
    assert continuation_checks(b, na, buffer=False)["buffer checksum intact"]


def test_recreated_pids_from_the_report_line() -> None:
    line = "wpp-recreate: recreated /usr/bin/wpp-counter pid 97 as pid 97 (3 regions)"
    assert recreated_pids(line) == (97, 97)
    assert recreated_pids("wpp-recreate: error: nothing persisted") is None


def test_start_waits_longer_for_a_bigger_buffer() -> None:
    """The counter fills its buffer before its first line (eager: one SMI per page), so the
    wait for it grows with the buffer; 30 s flat timed out for 8 MiB on a busy host."""
    from hil.wpp.experiment import CycleRunner

    small = CycleRunner(object(), buffer_mib=1).start_timeout_s()
    big = CycleRunner(object(), buffer_mib=8).start_timeout_s()
    assert small >= 30 and big >= small + 60
