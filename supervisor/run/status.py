"""The one place delivery and the nudge change a task's status: a merge that failed reopens or
blocks its task, an agent that ended without its result is resumed or waits for a person."""

from __future__ import annotations

from supervisor.model import Task, iso


def move(task: Task, status: str, reason: str, now: float) -> None:
    """Move `task` to `status` ("open" or "blocked") saying why; it is no longer closed."""
    task.status, task.status_reason = status, reason
    task.updated_at = iso(now)
    task.assignee = task.not_before = ""
    task.closed_at = task.close_reason = ""
