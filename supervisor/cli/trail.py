"""`fleet log`'s WHAT column: the supervisor's commits say which attempt ended how; this adds
why, read from each task as that commit left it (all of them in one `git cat-file --batch`)."""

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


def explain(store: Any, entries: list[Any]) -> list[tuple[str, dict[str, str]]]:
    """Per entry: its summary with the reason of each attempt that ended badly; the reasons."""
    from supervisor.store.store import task_path

    wanted = [
        f"{e.commit}:{task_path(task_id)}"
        for e in entries
        for event, ids in _segments(e.summary)
        if event in ENDINGS
        for task_id in ids
    ]
    found = dict(store.git.cat_batch(wanted)) if wanted else {}
    out: list[tuple[str, dict[str, str]]] = []
    for e in entries:
        if not e.summary.startswith(PREFIX):
            out.append((e.summary, {}))
            continue
        reasons: dict[str, str] = {}
        parts = []
        for event, ids in _segments(e.summary):
            if event not in ENDINGS or not ids:
                parts.append(" ".join([event, *ids]))
                continue
            told = []
            for task_id in ids:
                reason = _reason(found.get(f"{e.commit}:{task_path(task_id)}"))
                if reason:
                    reasons[task_id] = reason
                told.append(f"{task_id}: {reason}" if reason else task_id)
            parts.append(f"{event} {', '.join(told)}")
        out.append(("; ".join(parts), reasons))
    return out


def _segments(summary: str) -> list[tuple[str, list[str]]]:
    if not summary.startswith(PREFIX):
        return []
    out = []
    for segment in summary[len(PREFIX) :].split("; "):
        event, _, ids = segment.partition(" ")
        out.append((event, ids.split()))
    return out


def _reason(data: bytes | None) -> str:
    try:
        task = json.loads(data or b"{}")
    except ValueError:  # an unreadable old record: the summary alone still says what happened
        return ""
    if not isinstance(task, dict):
        return ""
    attempts = task.get("attempts")
    if isinstance(attempts, list) and attempts and isinstance(attempts[-1], dict):
        return str(attempts[-1].get("reason") or task.get("status_reason") or "")
    return str(task.get("status_reason") or "")
