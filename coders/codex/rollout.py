"""Codex's rollout files: what a thread recorded besides its `--json` output.

`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl` holds a thread's events, one JSON
object a line (`{"timestamp", "type": "event_msg", "payload": {...}}`). Its `token_count` events
carry the account's rate-limit windows as the model server's answers gave them in the
`x-codex-primary-*` and `x-codex-secondary-*` headers: `rate_limits{primary{used_percent,
window_minutes, resets_at}, secondary{...}}` (measured with 0.169, which reads the headers
`-used-percent`, `-window-minutes` and `-reset-at`, an epoch; earlier versions wrote
`resets_in_seconds`, counted from the line's time, instead of `resets_at`). `--json` shows none
of it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from coders.base import Event, EventKind, RateLimit
from coders.parsing.jsonlines import as_dict, number

THREAD_ID = re.compile(r"[0-9A-Za-z-]+")
WINDOWS = ("primary", "secondary")


def rollout_files(codex_home: Path, thread_id: str) -> list[Path]:
    """The thread's rollout files, oldest first (their paths sort by date and time)."""
    if not THREAD_ID.fullmatch(thread_id):
        return []
    return sorted((codex_home / "sessions").glob(f"*/*/*/rollout-*-{thread_id}.jsonl"))


def rate_limit_events(codex_home: Path, thread_id: str) -> list[Event]:
    """A `RATE_LIMIT` event per window of the thread's newest `token_count` ([] when none).

    The status is `allowed`: the windows come with answers that were served; `utilization` is
    the share of the window used, for the supervisor to compare with its threshold. The most
    used window comes last, so that a reader that keeps the newest event keeps the most pressing.
    """
    for path in reversed(rollout_files(codex_home, thread_id)):
        found = newest_rate_limits(path)
        if found is not None:
            limits, at = found
            events = [event for name in WINDOWS for event in _window_event(name, limits, at)]
            return sorted(events, key=_utilization)
    return []


def newest_rate_limits(path: Path) -> tuple[dict[str, Any], float | None] | None:
    """The last `token_count`'s `rate_limits` in a rollout, with the time of its line."""
    found = None
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if '"token_count"' in line:
                    found = _rate_limits(line) or found
    except OSError:
        return None
    return found


def _rate_limits(line: str) -> tuple[dict[str, Any], float | None] | None:
    try:
        data = as_dict(json.loads(line))
    except ValueError:
        return None
    payload = as_dict(data.get("payload"))
    limits = payload.get("rate_limits")
    if payload.get("type") != "token_count" or not isinstance(limits, dict):
        return None
    return limits, _epoch(data.get("timestamp"))


def _window_event(name: str, limits: dict[str, Any], at: float | None) -> list[Event]:
    window = as_dict(limits.get(name))
    used = number(window.get("used_percent"))
    if used is None:
        return []
    resets_at = number(window.get("resets_at"))
    after = number(window.get("resets_in_seconds"))
    if resets_at is None and after is not None and at is not None:
        resets_at = at + after
    minutes = number(window.get("window_minutes"))
    span = f" ({minutes:g} min)" if minutes is not None else ""
    limit = RateLimit(
        status="allowed",
        kind="usage_limit",
        window=name,
        utilization=used / 100,
        resets_at=resets_at,
    )
    return [Event(EventKind.RATE_LIMIT, text=f"{name} window{span}: {used:g}% used", limit=limit)]


def _utilization(event: Event) -> float:
    return (event.limit.utilization or 0.0) if event.limit else 0.0


def _epoch(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None
