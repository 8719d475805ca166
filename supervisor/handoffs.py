"""The status changes that handoffs make: a task reopened for rework, a task blocked by the loop
guard or by a gate. Kept in one place so that the rules of a task's status stay together.

Pure: each function changes the task it is given and says nothing else.
"""

from __future__ import annotations

from typing import Any

from supervisor import lifecycle
from supervisor.errors import BadInput
from supervisor.model import Task

HUMAN = "human"
ROLE_PREFIX = "role:"
REACTIONS_PATH = "state/reactions.json"  # where reactions stopped (supervisor.run.reactions)


def check_requirement(value: str) -> str:
    """An approval requirement: "human" or "role:NAME"."""
    if value == HUMAN or (value.startswith(ROLE_PREFIX) and len(value) > len(ROLE_PREFIX)):
        return value
    raise BadInput(
        f"{value!r} is not an approval requirement",
        hint='use "human" or "role:NAME", e.g. --requires role:reviewer,human',
    )


def start_reactions(snap: Any) -> dict[str, bytes | None]:
    """The file that makes reactions start at the snapshot's commit, when there is none yet:
    a commit that installs rules or a gate adds it, so they react to what happens from then on."""
    if snap.commit is None or snap.read(REACTIONS_PATH) is not None:
        return {}
    return {REACTIONS_PATH: ('{\n "after": "' + snap.commit + '",\n "waiting": {}\n}\n').encode()}


def reopen_for_rework(
    task: Task, handoff: dict[str, Any], now: float, counted: bool = True
) -> None:
    """Open `task` again with `handoff` (a review, a rejection) for its next attempt, on the same
    branch; a reopen by a rule is `counted` for the loop guard (a person's is not)."""
    why = f"reopened: {handoff.get('verdict', 'rework')} by {handoff.get('by', '?')}"
    lifecycle.rework(task, why, now)
    task.extra["handoff"] = {**handoff, "work": len(task.attempts)}
    if counted:
        task.extra["reopens"] = reopens(task) + 1


def block(task: Task, reason: str, now: float) -> None:
    """Block `task` with `reason` (a task running now is left for its attempt to end)."""
    lifecycle.hold_for(task, reason, now)


def reopens(task: Task) -> int:
    value = task.extra.get("reopens")
    return value if isinstance(value, int) else 0


def chain(task: Task) -> int:
    """How many tasks rules created, in a row, to reach this one (0: created by a person)."""
    origin = task.extra.get("origin")
    depth = origin.get("chain") if isinstance(origin, dict) else 0
    return depth if isinstance(depth, int) else 0


def pending_handoff(task: Task) -> dict[str, Any] | None:
    """The handoff the task's next attempt answers: set by its last reopen, and no attempt has
    succeeded since (a manual reopen later does not bring an old review back)."""
    handoff = task.extra.get("handoff")
    if not isinstance(handoff, dict) or task.status == "closed":
        return None
    since = handoff.get("work")
    later = task.attempts[since:] if isinstance(since, int) else []
    return None if any(a.get("outcome") == "success" for a in later) else handoff
