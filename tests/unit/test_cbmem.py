"""hil.drivers.cbmem: boots and wpp events from captured `cbmem -c` text (pure parsing)."""

from __future__ import annotations

import pytest

from hil.core.errors import HilError
from hil.drivers.cbmem import parse_log, parse_wpp_line, read_cbmem
from hil.drivers.runner import CommandResult

# Two boots as coreboot 4.15 prints them (the first truncated at the buffer start), then a
# third boot of a board without bootblock console (starts at romstage after ramstage).
CAPTURED = """\
PCI: 00:1f.3 init
wpp: stale_from_truncated_boot id=1


coreboot-4.15-dirty Thu Nov 26 12:00:00 UTC 2026 bootblock starting (log level: 7)...
FMAP: Found "FLASH" version 1.1 at 0x0.
wpp: boot_start seq=1


coreboot-4.15-dirty Thu Nov 26 12:00:00 UTC 2026 romstage starting (log level: 7)...
QEMU: firmware config interface detected
wpp: region_scan regions=3 pages=0x1f40 mode=persist
wpp: save_done time_us=1234 bytes=0x100000 status=ok crc=-7
wpp:
wpp: restore region=
wpp: restore region=0x1000 bogus
wpp: 9lives x=1


coreboot-4.15-dirty Thu Nov 26 12:00:00 UTC 2026 ramstage starting (log level: 7)...
wpp: ramstage_ready time_us=99 future_key=something
coreboot-4.15-dirty Thu Nov 26 12:00:00 UTC 2026 smm starting (log level: 7)...
wpp: smi event=0xa3
[INFO ]  coreboot-4.15-dirty Thu Nov 26 12:00:00 UTC 2026 romstage starting (log level: 7)...
[INFO ]  wpp: restore_start seq=2 id=07
some line mentioning wpp: in passing is not an event
[DEBUG]  wpp: restore_done time_us=5678 pid=42 pid=43
coreboot-4.15-dirty Thu Nov 26 12:00:00 UTC 2026 ramstage starting (log level: 7)...
wpp: restored pid=42 time_us=7000
"""


def test_boots_are_split_at_stage_banners() -> None:
    log = parse_log(CAPTURED)
    # the wrapped tail of an older boot, then two boots
    assert len(log.boots) == 3
    lines = CAPTURED.splitlines()
    assert log.boots[0].start_line == 1
    assert [e.name for e in log.boots[0].events] == ["stale_from_truncated_boot"]
    assert "bootblock starting" in lines[log.boots[1].start_line - 1]
    assert log.boots[0].end_line == log.boots[1].start_line - 1
    assert "romstage starting" in lines[log.boots[2].start_line - 1]
    assert log.boots[1].end_line == log.boots[2].start_line - 1
    assert log.boots[2].end_line == len(lines)
    # the smm banner inside boot 1 does not start a boot
    assert [e.name for e in log.boots[1].events] == [
        "boot_start", "region_scan", "save_done", "ramstage_ready", "smi"]


def test_events_have_typed_fields_and_raw_text() -> None:
    log = parse_log(CAPTURED)
    scan = log.named("region_scan")[0]
    assert scan.fields == {"regions": 3, "pages": 0x1F40, "mode": "persist"}
    save = log.named("save_done")[0]
    assert save["time_us"] == 1234 and save["bytes"] == 0x100000
    assert save["status"] == "ok" and save["crc"] == -7
    assert save.raw == "wpp: save_done time_us=1234 bytes=0x100000 status=ok crc=-7"
    assert CAPTURED.splitlines()[save.line_no - 1] == save.raw
    assert log.named("ramstage_ready")[0]["future_key"] == "something"  # unknown keys kept
    assert log.named("smi")[0]["event"] == 0xA3
    # "07" is not a valid python int literal: kept as text rather than guessed
    assert log.named("restore_start")[0]["id"] == "07"
    assert log.raw == CAPTURED
    assert save.as_dict() == {"event": "save_done", "boot": 1, "line": save.line_no,
                              "time_us": 1234, "bytes": 0x100000, "status": "ok", "crc": -7}


def test_last_boot_events() -> None:
    log = parse_log(CAPTURED)
    assert [e.name for e in log.last_boot_events()] == ["restore_start", "restored"]
    assert log.named("restored", boot=-1)[0]["pid"] == 42
    assert log.named("boot_start", boot=-1) == []
    assert log.named("stale_from_truncated_boot")[0].boot == 0


def test_malformed_lines_are_reported_with_line_numbers() -> None:
    log = parse_log(CAPTURED)
    lines = CAPTURED.splitlines()
    got = {(m.line_no, m.reason) for m in log.malformed}
    def no(text: str) -> int:
        return lines.index(text) + 1
    assert got == {
        (no("wpp:"), "no event name after 'wpp:'"),
        (no("wpp: restore region="), "key 'region' has no value"),
        (no("wpp: restore region=0x1000 bogus"), "token 'bogus' is not key=value"),
        (no("wpp: 9lives x=1"), "bad event name '9lives'"),
        (no("[DEBUG]  wpp: restore_done time_us=5678 pid=42 pid=43"), "duplicate key 'pid'"),
    }
    assert all(m.raw == lines[m.line_no - 1] for m in log.malformed)
    assert "restore" not in {e.name for e in log.events}  # malformed lines are not events


@pytest.mark.parametrize(("body", "reason"), [
    ("", "no event name"),
    ("   ", "no event name"),
    ("a=b", "bad event name"),
    ("ev =x", "bad key"),
    ("ev k=", "no value"),
    ("ev k", "not key=value"),
])
def test_parse_wpp_line_rejects(body: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_wpp_line(body)


def test_parse_wpp_line_values() -> None:
    assert parse_wpp_line("ev a=10 b=0x10 c=-3 d=1.5 e=abc f=a=b") == (
        "ev", {"a": 10, "b": 16, "c": -3, "d": "1.5", "e": "abc", "f": "a=b"})


def test_text_before_a_later_stage_banner_is_the_same_boot() -> None:
    text = "early line\nwpp: a x=1\ncoreboot-4.15 x ramstage starting (log level: 7)...\n" \
        "wpp: b x=2\ncoreboot-4.15 x bootblock starting (log level: 7)...\nwpp: c x=3\n"
    log = parse_log(text)
    assert [[e.name for e in b.events] for b in log.boots] == [["a", "b"], ["c"]]


def test_log_without_banner_is_one_boot() -> None:
    log = parse_log("wpp: x a=1\nhello\n")
    assert len(log.boots) == 1 and log.last_boot_events()[0].name == "x"
    assert parse_log("").boots == [] and parse_log("").last_boot_events() == []


class FakeShell:
    """Stands in for hil.drivers.shell.Shell: records the command, returns canned output."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60, check: bool = True) -> CommandResult:
        self.commands.append(command)
        return self.result


def test_read_cbmem_runs_the_right_command() -> None:
    sh = FakeShell(CommandResult("cbmem -1", 0, CAPTURED, ""))
    log = read_cbmem(sh, last_boot=True)
    assert sh.commands == ["cbmem -1"]
    assert len(log.events) == 8
    read_cbmem(sh)
    assert sh.commands[-1] == "cbmem -c"


def test_read_cbmem_errors_are_clear() -> None:
    with pytest.raises(HilError, match="not installed"):
        read_cbmem(FakeShell(CommandResult("cbmem -c", 127, "", "sh: cbmem: not found")))
    with pytest.raises(HilError, match="exit code 1: mmap failed") as exc:
        read_cbmem(FakeShell(CommandResult("cbmem -c", 1, "", "x\nmmap failed")))
    assert "root" in (exc.value.hint or "")
