"""Attempts that prepare a task rather than do it: triage (choose its role) and refinement (fill
in what its role needs before it may start). Their result changes the task and puts it back in the
queue for the work itself; it is not a failure and does not count against `max_attempts`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coders.base import Outcome
from supervisor import lifecycle, routing
from supervisor.config import Config
from supervisor.lifecycle import Ending
from supervisor.model import Task

Fill = Callable[[Task, dict[str, Any], float], bool]  # (task, attempt record, now) -> changed

REFINED_FIELDS = {
    "description": "description",
    "acceptance": "acceptance_criteria",
    "design": "design",
}


class Refused(Exception):
    pass


def knowledge(task: Task, config: Config) -> str:
    """What the agent is asked to do in a triage or refinement attempt ("" for the work)."""
    purpose = task.run.purpose if task.run else ""
    if purpose == routing.TRIAGE:
        roles = "\n".join(
            f"- {name}: {_first_line(settings.handbook) or 'no handbook'}"
            for name, settings in sorted(config.roles.items())
            if name != config.triage_role
        )
        return (
            "## Your job: route this task\n\n"
            "Do not do the task. Choose the role that should do it, from these:\n"
            f"{roles or '- (no roles are configured)'}\n\n"
            'Add to your result: "route": {"role": "<one of the roles>", "reason": "<why>"}'
        )
    if purpose == routing.REFINE:
        missing = list(task.run.missing or []) if task.run else []
        return (
            "## Your job: refine this task before work starts\n\n"
            f"Do not do the task. It lacks: {', '.join(missing)}. Write what a developer needs "
            "to start: a clear description, acceptance criteria that can be checked, and an "
            "estimate.\n"
            'Add to your result: "refined": {"description": "...", "acceptance": "...", '
            '"design": "... (optional)", "estimate_minutes": 30}'
        )
    return ""


def record_fields(task: Task | None) -> dict[str, Any]:
    """The role an attempt ran as, and what for, for its record."""
    run = task.run if task else None
    out: dict[str, Any] = {}
    if run is not None and run.role:
        out["role"] = run.role
    if run is not None and run.purpose:
        out["purpose"] = run.purpose
    return out


def on_end(ending: Ending, task: Task | None, config: Config) -> tuple[Ending, Fill | None]:
    """For a triage or refinement attempt that finished: how it changes the task, or a failure
    saying what its result lacks (retried by the usual rules, and the agent told)."""
    purpose = task.run.purpose if task and task.run else ""
    result = ending.result
    if not purpose or ending.outcome != Outcome.SUCCESS or result is None:
        return ending, None
    if result.status != "done":
        return ending, None
    try:
        if purpose == routing.TRIAGE:
            fill = _route(result.data.get("route"), config)
        else:
            fill = _refine(result.data.get("refined"), task)
    except Refused as exc:
        return Ending(Outcome.FAILURE, f"{purpose}: {exc}", result), None
    return ending, fill


def _route(raw: object, config: Config) -> Fill:
    if not isinstance(raw, dict):
        raise Refused('the result has no "route": {"role": ..., "reason": ...}')
    role, reason = raw.get("role"), raw.get("reason", "")
    choices = sorted(n for n in config.roles if n != config.triage_role)
    if not isinstance(role, str) or role not in choices:
        raise Refused(f"role {role!r} is not one of the configured roles ({', '.join(choices)})")
    if not isinstance(reason, str):
        raise Refused("the route's reason is not a string")

    def fill(task: Task, record: dict[str, Any], now: float) -> bool:
        task.role = role
        task.route = {"role": role, "by": routing.TRIAGE, "reason": reason.strip()}
        why = f"routed to {role} by triage: {reason.strip() or 'no reason'}"
        return _requeue(task, record, now, why)

    return fill


def _refine(raw: object, task: Task | None) -> Fill:
    if not isinstance(raw, dict):
        raise Refused('the result has no "refined": {"description": ..., "acceptance": ...}')
    texts: dict[str, str] = {}
    for key, field in REFINED_FIELDS.items():
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refused(f"refined.{key} is not a string")
        texts[field] = value.strip()
    minutes = raw.get("estimate_minutes")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0
    ):
        raise Refused("refined.estimate_minutes is not a whole number of minutes")
    missing = list(task.run.missing or []) if task and task.run else []
    given = {**{k: bool(v) for k, v in texts.items()}, "estimate": minutes is not None}
    lacking = [m for m in missing if not given.get(REFINED_FIELDS.get(m, m), False)]
    if lacking:
        raise Refused(f"the refined task still lacks {', '.join(lacking)}")

    def fill(task: Task, record: dict[str, Any], now: float) -> bool:
        for field, value in texts.items():
            if value:
                setattr(task, field, value)
        if minutes is not None:
            task.extra["estimated_minutes"] = minutes
        if routing.REFINED_LABEL not in task.labels:
            task.labels = sorted([*task.labels, routing.REFINED_LABEL])
        return _requeue(task, record, now, f"refined by {record.get('role') or 'its refiner'}")

    return fill


def _requeue(task: Task, record: dict[str, Any], now: float, reason: str) -> bool:
    n = int(record.get("n") or 0)
    return lifecycle.prepared(task, n, record, reason, now)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip().strip("#").strip():
            return line.strip().strip("#").strip()[:200]
    return ""
