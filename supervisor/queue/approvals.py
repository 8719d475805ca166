"""What people and agents say about a task's work: approve it, reject it, or emit an event about
it. One commit each, carrying its event (`Fleet-Emit:`).

An approval given from inside an agent (`FLEET_TASK_ID` set) is that agent's, as its role; an
agent never approves its own work, nor work written with its own identity.
"""

from __future__ import annotations

import json
from typing import Any

from supervisor import gates, handoffs
from supervisor.config import Config
from supervisor.errors import BadInput, NotFound
from supervisor.events import check_type, emit_line
from supervisor.model import Task, check_id, now_iso, parse_time
from supervisor.queue import roles as roles_store
from supervisor.store.store import Change, Snapshot, Store, user_actor


def approve(
    store: Store, task_id: str, comment: str = "", agent: str = "", actor: str | None = None
) -> gates.Verdict:
    """Approve the task's current work (as a person, or as the agent of task `agent`)."""
    check_id(task_id)
    who = actor or user_actor()
    config = roles_store.effective_config(store)

    def build(snap: Snapshot) -> tuple[Change | None, tuple[gates.Verdict, str]]:
        task = snap.need(task_id)
        _closed(task, "approve")
        record: dict[str, Any] = {
            "kind": gates.HUMAN,
            "by": who,
            "verdict": "approved",
            "work": gates.work(task),
            "at": now_iso(),
        }
        emits = []
        if agent:
            approver = snap.need(check_id(agent))
            refusal = gates.refuse_self_approval(task, approver)
            run = approver.run.to_dict() if approver.run else {}
            record.update(kind="role", role=approver.role, by=approver.id)
            record.update({k: str(run.get(k) or "") for k in ("coder", "model", "account")})
            if refusal:
                record.update(verdict="refused", reason=refusal)
                emits.append(emit_line("review.refused", task.id, {"by": agent, "reason": refusal}))
        if comment:
            record["comment"] = comment
        task.extra["approvals"] = [*gates.approvals(task), record]
        verdict = gates.may_deliver(task, gates.approvals(task), config)
        gates.release(task, config, now_iso())  # gated work joins the merge queue
        if record["verdict"] == "approved":
            as_ = gates.HUMAN if not agent else f"role:{record['role']}"
            emits.append(emit_line("gate.approved", task.id, {"by": record["by"], "as": as_}))
            if verdict.ok:
                emits.append(emit_line("gate.open", task.id, {"approved_by": verdict.approved_by}))
        change = Change(
            f"{'approve' if record['verdict'] == 'approved' else 'refuse approval of'} "
            f"{task.id} by {record['by']}" + (f": {comment}" if comment else ""),
            "approved" if record["verdict"] == "approved" else "approval_refused",
        )
        change.put(task)
        change.details = "\n".join(emits)
        return change, (verdict, str(record.get("reason") or ""))

    verdict, refusal = store.mutate(build, actor)
    if refusal:  # recorded, and said
        raise BadInput(refusal, hint="a person or another agent approves it")
    return verdict


def reject(store: Store, task_id: str, reason: str, actor: str | None = None) -> Task:
    """Reject the task's current work: it reopens, on the same branch, with `reason` as handoff."""
    check_id(task_id)
    if not reason.strip():
        raise BadInput("a rejection needs a reason", hint=f'fleet reject {task_id} --reason "..."')
    who = actor or user_actor()

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        _closed(task, "reject")
        record = {
            "kind": gates.HUMAN,
            "by": who,
            "verdict": "rejected",
            "reason": reason,
            "work": gates.work(task),
            "at": now_iso(),
        }
        task.extra["approvals"] = [*gates.approvals(task), record]
        handoff = {"by": who, "verdict": "rejected", "summary": reason, "comments": []}
        handoffs.reopen_for_rework(task, handoff, parse_time(str(record["at"])), counted=False)
        change = Change(f"reject {task.id} by {who}: {reason[:60]}", "rejected")
        change.put(task)
        change.details = emit_line("gate.rejected", task.id, {"by": who, "reason": reason})
        return change, task

    return store.mutate(build, actor)


def emit(
    store: Store, type: str, task_id: str = "", data: str = "", actor: str | None = None
) -> str:
    """Record event `type` about a task (from an agent or a script); its commit's event line."""
    check_type(type)
    if task_id:
        check_id(task_id)
    try:
        payload = json.loads(data) if data else {}
    except ValueError as exc:
        raise BadInput(f"--data is not JSON: {exc}", hint='--data \'{"key": "value"}\'') from None
    if not isinstance(payload, dict):
        raise BadInput("--data is not a JSON object", hint='--data \'{"key": "value"}\'')
    line = emit_line(type, task_id, payload)

    def build(snap: Snapshot) -> tuple[Change | None, str]:
        if task_id and snap.get(task_id) is None:
            raise NotFound(
                f"task {task_id} does not exist",
                hint="run `fleet bd list --all` to see the tasks in this store",
            )
        record = {"type": type, "task": task_id, "data": payload, "at": now_iso()}
        path = f"state/emitted/{task_id or 'fleet'}.json"
        change = Change(
            f"emit {type}" + (f" {task_id}" if task_id else ""),
            "emitted",
            files={path: (json.dumps(record, sort_keys=True) + "\n").encode()},
        )
        change.details = line
        return change, line

    return store.mutate(build, actor)


def gate_of(task: Task, config: Config) -> gates.Verdict:
    return gates.may_deliver(task, gates.approvals(task), config)


def _closed(task: Task, what: str) -> None:
    if task.status != "closed":
        raise BadInput(
            f"task {task.id} is {task.status}: there is no finished work to {what} yet",
            hint=f"see where it stands with `fleet task {task.id}`",
        )
