"""The twin has swap, as the board has: a swap file on the persistent disk (issue 12).

The guest's init (kernel/rootfs/init) makes ``/data/wpp.swap`` once and ``swapon``s it at
every boot. Power cuts must not cost it: the file is re-used as it is (its stale pages are
never read across a boot), and a file whose swap signature was lost is signed again.
What swap means for a tracked process (its swapped-out pages are brought in before
PERSIST) is tested in ``test_pagetable_check.py`` (``swap-*`` cases).
"""

from __future__ import annotations

from typing import Any

SWAPFILE = "/data/wpp.swap"
PROBE = "/usr/bin/wpp-mmprobe"


def _sh(target: Any, cmd: str, timeout: float = 60, check: bool = True) -> Any:
    return target.shell.run(cmd, timeout=timeout, check=check)


def _swaps(target: Any) -> dict[str, tuple[int, int]]:
    """/proc/swaps: name -> (size KiB, used KiB)."""
    out = _sh(target, "cat /proc/swaps").stdout.splitlines()[1:]
    return {f[0]: (int(f[2]), int(f[3])) for f in (ln.split() for ln in out) if len(f) >= 4}


def _inode(target: Any) -> int:
    return int(_sh(target, f"stat -c %i {SWAPFILE}").stdout.strip())


def test_swap_file_is_on_and_reused_after_power_cuts(target: Any) -> None:
    swaps = _swaps(target)
    assert SWAPFILE in swaps, f"no swap on the persistent disk: {swaps}"
    assert swaps[SWAPFILE][0] >= 60 * 1024, swaps
    inode = _inode(target)

    # put pages in it (an untracked probe swaps 8 MiB out), then cut the power
    _sh(target, f"setsid {PROBE} --case swap --period-ms 100000 </dev/null >/dev/null 2>&1 & "
                "sleep 2")
    used = _swaps(target)[SWAPFILE][1]
    assert used >= 4 * 1024, f"MADV_PAGEOUT put only {used} KiB in swap"
    target.power_cut()
    target.boot()
    swaps = _swaps(target)
    assert SWAPFILE in swaps, f"swap not on after a power cut: {swaps}"
    assert _inode(target) == inode, "the swap file was made again instead of re-used"
    assert swaps[SWAPFILE][1] < used, "stale swap content counted as used after the boot"


def test_lost_swap_signature_is_written_again(target: Any) -> None:
    """A file without its signature (damaged, or cut while signing) is signed at boot."""
    assert SWAPFILE in _swaps(target)
    _sh(target, f"swapoff {SWAPFILE} && dd if=/dev/zero of={SWAPFILE} bs=4096 count=1 "
                "conv=notrunc 2>/dev/null && sync")
    assert SWAPFILE not in _swaps(target)
    assert _sh(target, f"swapon {SWAPFILE}", check=False).exit_code != 0, \
        "swapon accepted a file without a signature: the test damages nothing"
    target.power_cut()
    target.boot()
    assert SWAPFILE in _swaps(target), "a swap file without signature was not signed again"
