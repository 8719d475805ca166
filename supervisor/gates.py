"""Approval gates: what a task's work needs before it is delivered, and whether it has it.

A task (`requires` in its file) or its role (`requires` in the role's settings) lists what must
approve its work: `"human"` (a person, with `fleet approve`) and `"role:NAME"` (an agent of role
NAME, through a review's verdict). Approvals are recorded on the task (`approvals`), each for one
version of its work: the number of attempts it had when approved. Work done after an approval
(a rework) needs approving again; nothing is ever deleted.

Reviewer ≠ author: an approval by an agent counts only when its identity (coder, model, account)
differs from the identity that wrote the work.

`may_deliver(task, approvals, config)` is the predicate a merge queue asks before it delivers a
closed task's branch. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from supervisor.config import Config
from supervisor.handoffs import HUMAN, ROLE_PREFIX, check_requirement
from supervisor.model import Task, parse_time

__all__ = ["HUMAN", "ROLE_PREFIX", "Verdict", "check_requirement", "may_deliver"]


@dataclass
class Verdict:
    ok: bool
    waiting_for: list[str] = field(default_factory=list)  # requirements not met yet
    reason: str = ""
    approved_by: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def requirements(task: Task, config: Config) -> list[str]:
    """The task's own `requires`, else its role's."""
    own = task.extra.get("requires")
    if isinstance(own, list):
        return [str(r) for r in own]
    role = config.roles.get(task.role) if task.role else None
    return list(role.requires) if role else []


def approvals(task: Task) -> list[dict[str, Any]]:
    found = task.extra.get("approvals")
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []


def work(task: Task) -> int:
    """Which version of the task's work an approval is for: its number of attempts."""
    return len(task.attempts)


def identity(record: dict[str, Any]) -> tuple[str, str, str]:
    return (
        str(record.get("coder") or ""),
        str(record.get("model") or ""),
        str(record.get("account") or ""),
    )


def author(task: Task) -> tuple[str, str, str] | None:
    """Who wrote the task's work: the identity of its last attempt that succeeded."""
    done = [a for a in task.attempts if a.get("outcome") == "success"]
    return identity(done[-1]) if done else None


def satisfies(approval: dict[str, Any], requirement: str, task: Task) -> bool:
    if approval.get("verdict") != "approved":
        return False
    if requirement == HUMAN:
        return approval.get("kind") == HUMAN
    wanted = requirement[len(ROLE_PREFIX) :]
    if approval.get("kind") != "role" or approval.get("role") != wanted:
        return False
    return identity(approval) != author(task)


def may_deliver(task: Task, approvals_: list[dict[str, Any]], config: Config) -> Verdict:
    """Whether the task's work may be delivered now: it is closed and every requirement is met
    by an approval of its current work, none of which was followed by a rejection."""
    needed = requirements(task, config)
    if task.status != "closed":
        return Verdict(False, needed, f"task {task.id} is {task.status}, not closed")
    current = [a for a in approvals_ if a.get("work") == work(task)]
    if current and current[-1].get("verdict") == "rejected":
        last = current[-1]
        return Verdict(
            False, needed, f"rejected by {last.get('by', '?')}: {last.get('reason', '')}"
        )
    missing = [r for r in needed if not any(satisfies(a, r, task) for a in current)]
    by = [str(a.get("by", "?")) for a in current if a.get("verdict") == "approved"]
    if missing:
        return Verdict(False, missing, "waits for " + ", ".join(missing), by)
    return Verdict(True, [], "approved" if needed else "no approval required", by)


def waiting_since(task: Task) -> float | None:
    """When the task's gate began waiting (its close), as epoch seconds."""
    return parse_time(task.closed_at) if task.closed_at else None


def refuse_self_approval(task: Task, approver_task: Task | None) -> str:
    """Why the agent of `approver_task` may not approve `task` ("" when it may)."""
    if approver_task is None:
        return ""
    if approver_task.id == task.id:
        return f"the agent of task {task.id} cannot approve its own work"
    run = approver_task.run.to_dict() if approver_task.run else {}
    if author(task) is not None and identity(run) == author(task):
        return (
            f"the agent of task {approver_task.id} has the author's identity "
            f"({'/'.join(x or '-' for x in identity(run))}): it cannot approve {task.id}"
        )
    return ""


GATED = "gated"  # `delivery.state` of work that waits for its approvals before the merge queue


def hold(task: Task, config: Config, branch: str, kept: dict[str, Any], now_iso: str) -> bool:
    """Work that closed but whose gate is shut waits for its approvals instead of the merge
    queue (`delivery.state = gated`); False when the gate is open (or there is none)."""
    verdict = may_deliver(task, approvals(task), config)
    if verdict.ok:
        return False
    waits = ", ".join(verdict.waiting_for) or verdict.reason
    task.delivery = {**kept, "state": GATED, "branch": branch, "waiting": f"approval: {waits}"}
    task.delivery["gated_at"] = now_iso
    return True


def release(task: Task, config: Config, now_iso: str) -> bool:
    """Once its gate opens, gated work joins the merge queue (`delivery.state = queued`)."""
    state = dict(task.delivery or {})
    if state.get("state") != GATED or not may_deliver(task, approvals(task), config).ok:
        return False
    state.pop("waiting", None)
    task.delivery = {**state, "state": "queued", "queued_at": now_iso}
    task.updated_at = now_iso  # the merge queue looks at what changed since it last looked
    return True
