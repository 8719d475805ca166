"""How the command line writes numbers in tables: one style for money, tokens and time."""

from __future__ import annotations

from typing import Any


def money(value: Any) -> str:
    """USD: `$0.0123` under a dollar (cents would hide a run's cost), `$12.35` above; `-`: none
    known."""
    if value is None or value == "":
        return "-"
    usd = float(value)
    return f"${usd:,.2f}" if abs(usd) >= 1 else f"${usd:.4f}"


def tokens(value: Any) -> str:
    """A token count with thousands separators: `12,345`."""
    return f"{int(value or 0):,}"


def duration(seconds: Any) -> str:
    """`45s`, `3m05s`, `2h01m`; empty when unknown."""
    if seconds is None or seconds == "":
        return ""
    s = int(float(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
