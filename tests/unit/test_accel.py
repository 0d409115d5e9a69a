"""hil.emulated.accel: KVM only when it runs a q35 with SMM here; else TCG, said once."""

from __future__ import annotations

import pytest

from hil.emulated import accel as A


def test_tcg_is_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    A.choose.cache_clear()
    monkeypatch.setenv(A.ENV, "tcg")
    assert A.choose() == A.Accel("tcg", "WPP_TWIN_ACCEL=tcg")
    A.choose.cache_clear()


def test_the_probe_decides_and_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    A.choose.cache_clear()
    monkeypatch.delenv(A.ENV, raising=False)
    monkeypatch.setattr(A, "_probe_kvm", lambda: "System Management Mode not supported")
    got = A.choose()
    assert got.name == "tcg" and "System Management Mode not supported" in got.reason
    A.choose.cache_clear()
    monkeypatch.setattr(A, "_probe_kvm", lambda: None)
    assert A.choose().name == "kvm"
    A.choose.cache_clear()


def test_real_probe_on_this_host_gives_a_usable_answer() -> None:
    """Here: a reason for TCG (this machine's KVM has no SMM) or None (KVM with SMM)."""
    why = A._probe_kvm()
    assert why is None or (isinstance(why, str) and why)


def test_qemu_arguments() -> None:
    assert A.Accel("kvm", "").qemu_args(2) == ["-accel", "kvm"]
    assert A.Accel("tcg", "").qemu_args(1) == ["-accel", "tcg"]
    assert A.Accel("tcg", "").qemu_args(2) == ["-accel", "tcg,thread=multi"]
