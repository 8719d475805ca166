"""The one place delivery and the nudge change a task's status, through the lifecycle: a merge
that failed reopens or blocks its task, an agent that ended without its result is resumed or waits
for a person."""

from __future__ import annotations

from supervisor import lifecycle
from supervisor.model import Task


def move(task: Task, status: str, reason: str, now: float) -> None:
    """Move `task` to `status` ("open" or "blocked") saying why; it is no longer closed."""
    lifecycle.delivery_move(task, status, reason, now)
