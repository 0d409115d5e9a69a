"""Who may use WPP (issue 13, kernel side): tracking, the trigger and the firmware counters.

* Only CAP_SYS_ADMIN may start tracking: ``clone(CLONE_DETACHED)`` by another user takes the
  single tracking slot and, in eager mode, makes every page event an SMI. Found on the twin:
  uid 65534 ran ``wpp-start -d /bin/sleep 30`` and became the tracked process.
* The trigger's write handler checks ``capable(CAP_SYS_ADMIN)`` itself instead of relying
  on the device's 0600 mode: root without CAP_SYS_ADMIN is refused.
* ``/sys/kernel/wpp/fw_counters`` is root-only (0400): each read is an SMI (READ_DATA).

``wpp-runas`` (kernel/tools) runs a command as another uid, or as root without
CAP_SYS_ADMIN.
"""

from __future__ import annotations

from typing import Any

from counter_probe import kill_tracked


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def _calls(target: Any, event: str) -> int:
    for line in _sh(target, "cat /sys/kernel/wpp/stats").stdout.splitlines():
        f = line.split()
        if f[0] == event:
            return int(f[1])
    raise AssertionError(f"no {event} line in /sys/kernel/wpp/stats")


def test_unprivileged_user_cannot_start_tracking(target: Any) -> None:
    kill_tracked(target)
    res = _sh(target, "wpp-runas 65534 65534 wpp-start -d /bin/sleep 30", check=False)
    out = res.stdout + res.stderr
    try:
        assert not res.ok, f"uid 65534 started tracking: {out}"
        assert _sh(target, "cat /sys/kernel/wpp/tracked_pid").stdout.strip() == "0"
        assert "CAP_SYS_ADMIN" in out, out
        log = _sh(target, "dmesg | grep 'CLONE_DETACHED refused' | tail -1").stdout
        assert "tracking needs CAP_SYS_ADMIN" in log and "uid 65534" in log, log
    finally:
        kill_tracked(target)
    # root still may: the refusal is about the capability, not about tracking
    res = _sh(target, "wpp-start -d /bin/sleep 30")
    pid = int(res.stdout.split()[-1])
    assert _sh(target, "cat /sys/kernel/wpp/tracked_pid").stdout.strip() == str(pid)
    kill_tracked(target)


def test_trigger_checks_capability(target: Any) -> None:
    kill_tracked(target)
    res = _sh(target, "wpp-runas --no-sys-admin sh -c 'echo 70 > /dev/wpp-trigger'", check=False)
    assert not res.ok
    assert "Operation not permitted" in res.stderr, res.stderr
    # with the capability the handler runs: nothing tracked -> ESRCH
    res = _sh(target, "echo 70 > /dev/wpp-trigger", check=False)
    assert not res.ok and "No such process" in res.stderr, res.stderr


def test_firmware_counters_root_only(target: Any) -> None:
    assert _sh(target, "stat -c %a /sys/kernel/wpp/fw_counters").stdout.strip() == "400"
    before = _calls(target, "read_data")
    res = _sh(target, "wpp-runas 65534 65534 cat /sys/kernel/wpp/fw_counters", check=False)
    assert not res.ok and "Permission denied" in res.stderr, res.stdout + res.stderr
    assert _calls(target, "read_data") == before, "an unprivileged read reached the firmware"
    assert "pages_used" in _sh(target, "cat /sys/kernel/wpp/fw_counters").stdout
