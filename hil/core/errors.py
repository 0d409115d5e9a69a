"""Exceptions with a one-line cause and a hint, so the CLI never shows a bare traceback.

Every failure a user can fix (missing tool, missing secret, bad inventory, refused image)
is raised as a `HilError` subclass carrying a `hint` that says how to fix it. The CLI
prints ``error: <cause>`` and ``hint: <hint>`` and exits 1 (or 2 for `ConfigError`).
"""

from __future__ import annotations


class HilError(Exception):
    """Base class: an expected failure with a human-readable cause and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:  # the cause only; the hint is printed separately
        return self.args[0] if self.args else self.__class__.__name__


class ConfigError(HilError):
    """Inventory, option or usage error (exit code 2)."""

    exit_code = 2


class MissingToolError(HilError):
    """A required external program is not installed."""

    def __init__(self, tool: str, package: str | None = None) -> None:
        hint = f"install it with 'apt-get install {package}' or run 'make setup'" if package else (
            "run 'make setup'"
        )
        super().__init__(f"required tool '{tool}' not found in PATH", hint)
        self.tool = tool


class MissingSecretError(ConfigError):
    """A secret named by the inventory (environment variable or file) is not available."""


class TimeoutExpired(HilError):
    """A deadline passed while waiting for something (boot, prompt, SSH, flash)."""
