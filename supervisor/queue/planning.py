"""What people do to plans: route a task now, and queue a reviewed task graph in one commit."""

from __future__ import annotations

from typing import Any

import coders
from supervisor import lifecycle, planning
from supervisor.config import Config
from supervisor.errors import BadInput
from supervisor.model import Task, check_id, now_iso, parse_time
from supervisor.queue.mutations import NewTask, new_task
from supervisor.store.store import Change, Snapshot, Store


def set_route(store: Store, task_id: str, route: dict[str, Any], actor: str | None = None) -> Task:
    """Give the task the role a rule chose, with the rule as its reason."""
    check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        if task.role == route["role"] and task.route == route:
            return None, task
        task.role, task.route, task.updated_at = str(route["role"]), dict(route), now_iso()
        change = Change(f"route {task_id}: to {task.role} ({route.get('by')})", "routed")
        change.put(task)
        return change, task

    return store.mutate(build, actor)


def queue_graph(
    store: Store, parent: NewTask, raw: object, config: Config, actor: str | None = None
) -> tuple[Task, list[Task]]:
    """The parent and its subtasks (as a result lists them), created in one commit: the parent
    waits for them. Refused whole, with the reason, when the list is not valid."""

    def build(snap: Snapshot) -> tuple[Change, tuple[Task, list[Task]]]:
        task = new_task(snap, parent)
        try:
            subtasks = planning.parse(
                raw,
                parent=task,
                max_children=config.max_children,
                max_depth=config.max_depth,
                coders=coders.names(),
                roles=config.roles,
                exists=lambda task_id: snap.get(task_id) is not None,
            )
        except planning.Refused as exc:
            raise BadInput(
                f"the task graph is not valid: {exc}",
                hint="fix the subtasks file (see `fleet plan --help`)",
            ) from None
        if not subtasks:
            raise BadInput("the task graph has no subtasks", hint="list at least one subtask")
        taken = lambda task_id: snap.get(task_id) is not None  # noqa: E731
        children = planning.children(task, subtasks, taken, parse_time(task.created_at))
        after = task.after_children or config.after_children
        lifecycle.wait_for_subtasks(task, [c.id for c in children], after)
        change = Change(
            f"plan {task.id}: {_short(task.title)} ({len(children)} subtasks)", "planned"
        )
        for child in children:
            change.put(child)
        change.put(task)
        return change, (task, children)

    return store.mutate(build, actor)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
