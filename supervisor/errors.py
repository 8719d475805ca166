"""fleet's errors: one base class; each message names the object and the next step."""

from __future__ import annotations


class FleetError(Exception):
    """A failure fleet can explain. Exit code 1 unless a subclass says otherwise."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class BadInput(FleetError):
    """The caller asked for something invalid; nothing was changed. Exit code 2."""

    exit_code = 2


class NotFound(BadInput):
    """An id or name that the store does not have."""


class StoreError(FleetError):
    """The store could not be read or written (git failed, the home is unsafe, ...)."""


class GitError(StoreError):
    """A git command failed; carries its argv, exit code and output."""

    def __init__(self, argv: list[str], code: int, stderr: str) -> None:
        shown = " ".join(argv[:6]) + (" ..." if len(argv) > 6 else "")
        super().__init__(f"git failed (exit {code}): {shown}\n{stderr.strip()}")
        self.argv = argv
        self.code = code
        self.stderr = stderr


class Conflict(FleetError):
    """A write lost its compare-and-swap too many times, or a claim was taken by another."""
