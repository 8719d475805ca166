"""Events: a typed view of the store's history.

Every state change is a commit; an event is what one commit did to one task, read either from the
change of the task's file (created, claimed, an attempt ended, closed, reopened, blocked) or from
a `Fleet-Emit:` line the commit carries (a review's verdict, a gate, a merge, anything `fleet
emit` sent). An event's id is `<commit>:<index>`: the commits are ordered, so a reader that
remembers the last id it handled resumes without gaps or repeats.

Pure: derivation from two versions of a task, and the emit line format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from supervisor.errors import BadInput

EMIT_KEY = "Fleet-Emit"
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+\Z")
# The types fleet itself raises (`fleet emit` may send others, namespaced the same way).
KNOWN = (
    "task.created",
    "task.claimed",
    "attempt.ended",
    "task.closed",
    "task.reopened",
    "task.blocked",
    "task.deleted",
    "budget.warning",
    "budget.exceeded",
    "review.verdict",
    "review.refused",
    "gate.waiting",
    "gate.approved",
    "gate.rejected",
    "gate.open",
    "gate.timeout",
    "merge.done",
    "merge.failed",
    "loop.blocked",
    "rule.failed",
    "config.changed",
    "role.changed",
)


@dataclass
class Event:
    type: str
    task: str
    time: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""  # <commit>:<index within the commit>
    actor: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "task": self.task,
            "time": self.time,
            "actor": self.actor,
            "data": self.data,
        }


def check_type(value: str) -> str:
    if not TYPE_PATTERN.match(value):
        raise BadInput(
            f"event type {value!r} is not valid",
            hint="types are dotted lowercase words, e.g. review.verdict or deploy.done",
        )
    return value


def emit_line(type: str, task: str, data: dict[str, Any] | None = None) -> str:
    """The commit line that carries an event."""
    body = {"type": check_type(type), "task": task, "data": data or {}}
    return f"{EMIT_KEY}: " + json.dumps(body, separators=(",", ":"), sort_keys=True)


def parse_emit(value: str) -> tuple[str, str, dict[str, Any]] | None:
    """(type, task, data) of an emit line's value, or None when it is not one."""
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return None
    data = body.get("data")
    return str(body["type"]), str(body.get("task") or ""), data if isinstance(data, dict) else {}


def derive(
    old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[tuple[str, dict[str, Any]]]:
    """The events of one task's file changing from `old` to `new` (None: absent), in order."""
    if new is None:
        return [("task.deleted", {})] if old is not None else []
    out: list[tuple[str, dict[str, Any]]] = []
    if old is None:
        out.append(("task.created", {"title": new.get("title", ""), "role": new.get("role", "")}))
        old = {}
    run, old_run = new.get("run") or {}, old.get("run") or {}
    if run.get("attempt") and run.get("attempt") != old_run.get("attempt"):
        claim = ("attempt", "coder", "model", "account")
        out.append(("task.claimed", {k: run.get(k) for k in claim if run.get(k) is not None}))
    if run.get("budget_warning") and run.get("budget_warning") != old_run.get("budget_warning"):
        out.append(("budget.warning", {"warning": run["budget_warning"]}))
    attempts, before = new.get("attempts") or [], old.get("attempts") or []
    for record in attempts[len(before) :]:
        if not isinstance(record, dict):
            continue
        keys = ("n", "outcome", "reason", "summary", "coder", "model", "account", "seconds")
        out.append(("attempt.ended", {k: record[k] for k in keys if k in record}))
        if record.get("outcome") == "over_budget":
            out.append(("budget.exceeded", {"n": record.get("n"), "reason": record.get("reason")}))
    status, was = new.get("status"), old.get("status")
    if status != was and old:
        if status == "closed":
            out.append(("task.closed", {"reason": new.get("close_reason", "")}))
        elif status == "open" and was in ("closed", "blocked", "deferred"):
            out.append(("task.reopened", {"was": was, "reason": new.get("status_reason", "")}))
        elif status == "blocked":
            out.append(("task.blocked", {"reason": new.get("status_reason", "")}))
    elif not old and status == "closed":
        out.append(("task.closed", {"reason": new.get("close_reason", "")}))
    return out
