"""Subtasks in the supervisor: checked when an attempt ends, created in the commit that records it,
and the parents that wait for them settled once their last child closes (`supervisor.planning`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import coders
from coders.base import Outcome
from supervisor import lifecycle, planning
from supervisor.config import Config
from supervisor.lifecycle import Ending
from supervisor.model import Task
from supervisor.run.ops import Op
from supervisor.run.triage import Fill
from supervisor.store.store import Snapshot, Store

Spawn = Callable[[Snapshot, Task], list[Task]]


def on_end(
    ending: Ending, task: Task | None, store: Store, config: Config, fill: object = None
) -> tuple[Ending, list[planning.Subtask]]:
    """The subtasks a finished attempt's result lists, checked whole. A refusal turns the attempt
    into a failure whose reason the next attempt's knowledge shows the agent. (None for a triage
    or refinement attempt, `fill`: what it prepares is the task, not its subtasks.)"""
    result = ending.result
    if fill is not None or result is None or result.subtasks is None or task is None:
        return ending, []
    if ending.outcome != Outcome.SUCCESS or result.status != "done":
        return ending, []  # a partial or blocked result: its subtasks wait for the finished work
    try:
        subtasks = planning.parse(
            result.subtasks,
            parent=task,
            max_children=config.max_children,
            max_depth=config.max_depth,
            coders=coders.names(),
            roles=config.roles,
            exists=lambda task_id: store.cache.get(task_id) is not None,
        )
    except planning.Refused as exc:
        return Ending(Outcome.FAILURE, f"subtasks refused: {exc}", result), []
    return ending, subtasks


def after_children(task: Task, config: Config) -> str:
    role = config.roles.get(task.role)
    return task.after_children or (role.after_children if role else "") or config.after_children


def spawn(subtasks: list[planning.Subtask], after: str, now: float) -> Spawn | None:
    """What the commit that records the attempt also creates: the children, all or none."""
    if not subtasks:
        return None

    def make(snap: Snapshot, parent: Task) -> list[Task]:
        if parent.status != "closed":
            return []
        taken = lambda task_id: snap.get(task_id) is not None  # noqa: E731
        created = planning.children(parent, subtasks, taken, now)
        lifecycle.wait_for_subtasks(parent, [c.id for c in created], after)
        return created

    return make


class Parents:
    """Tasks waiting for their subtasks, looked at again whenever the store's ref moved."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: str | None = None

    def settle(self, snap: Snapshot, now: float) -> list[Op]:
        if snap.commit == self._seen:
            return []
        self._seen = snap.commit
        ops = []
        for body in self.store.cache.waiting_parents():
            parent = Task.from_dict(json.loads(body))
            statuses = self.store.cache.statuses(parent.subtasks)
            if not lifecycle.settle_subtasks(parent, statuses, now):  # on a copy: is there news?
                continue
            event = {"open": "integrate", "closed": "subtasks_closed"}.get(parent.status, "waiting")
            ops.append(Op(parent.id, event, _settler(statuses, now)))
        return ops


def _settler(statuses: dict[str, str], now: float) -> Callable[[Task], bool]:
    return lambda task: lifecycle.settle_subtasks(task, statuses, now)


def planned(
    op: Op,
    n: int,
    summary: dict[str, Any],
    fill: Fill | None,
    subtasks: list[planning.Subtask],
    task: Task | None,
    config: Config,
    now: float,
) -> Op:
    """The op that records an ended attempt, with what planning adds: a triage or refinement
    attempt's changes instead of the usual end, or the subtasks created in the same commit."""
    if fill is not None:
        prepare = fill

        def change(fresh: Task) -> bool:
            return lifecycle.current(fresh, n) is not None and prepare(fresh, dict(summary), now)

        op.apply = change
    after = after_children(task, config) if task else config.after_children
    op.spawn = spawn(subtasks, after, now)
    return op
