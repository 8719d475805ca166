"""`fleet log`'s WHAT column: the supervisor's commits say which attempt ended how; this adds
why, read from the task as that commit left it."""

from __future__ import annotations

import json
from typing import Any

ENDINGS = {
    "failure",
    "stalled",
    "timed_out",
    "rate_limited",
    "overloaded",
    "auth_error",
    "max_turns",
    "setup_error",
    "killed",
    "over_budget",
}
PREFIX = "supervisor: "


def what(store: Any, entry: Any) -> tuple[str, dict[str, str]]:
    """The entry's summary with the reason of each attempt that ended badly; and the reasons."""
    if not entry.summary.startswith(PREFIX):
        return entry.summary, {}
    reasons: dict[str, str] = {}
    parts = []
    for segment in entry.summary[len(PREFIX) :].split("; "):
        event, _, ids = segment.partition(" ")
        if event not in ENDINGS or not ids:
            parts.append(segment)
            continue
        told = []
        for task_id in ids.split():
            reason = _reason(store, entry.commit, task_id)
            if reason:
                reasons[task_id] = reason
            told.append(f"{task_id}: {reason}" if reason else task_id)
        parts.append(f"{event} {', '.join(told)}")
    return "; ".join(parts), reasons


def _reason(store: Any, commit: str, task_id: str) -> str:
    from supervisor.store.store import task_path

    try:
        data = store.git.read(f"{commit}:{task_path(task_id)}")
        task = json.loads(data or b"{}")
    except Exception:  # an unreadable old record: the summary alone still says what happened
        return ""
    attempts = task.get("attempts") if isinstance(task, dict) else None
    if isinstance(attempts, list) and attempts and isinstance(attempts[-1], dict):
        return str(attempts[-1].get("reason") or task.get("status_reason") or "")
    return str(task.get("status_reason") or "") if isinstance(task, dict) else ""
