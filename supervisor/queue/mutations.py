"""What people do to the queue: create, update, close, reopen, link tasks. One commit each."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supervisor.errors import BadInput, NotFound
from supervisor.graph import find_cycle
from supervisor.model import (
    BLOCKING_TYPES,
    DELIVER_MODES,
    DEP_TYPE_PATTERN,
    FLEET_STATUSES,
    KNOWN_DEP_TYPES,
    PARENT_TYPE,
    PREFIX_PATTERN,
    Dependency,
    Record,
    Task,
    check_dep_target,
    check_id,
    check_priority,
    new_id,
    now_iso,
)
from supervisor.store.repo import head_branch
from supervisor.store.store import Change, Snapshot, Store

DEFAULT_PREFIX = "fl"


class NewTask(Record):
    """What `fleet bd create` was given."""

    def __init__(
        self,
        title: str,
        description: str = "",
        design: str = "",
        acceptance_criteria: str = "",
        notes: str = "",
        priority: int = 2,
        issue_type: str = "task",
        labels: list[str] | None = None,
        deps: list[str] | None = None,
        parent: str = "",
        cwd: str = "",
        coder: str = "",
        model: str = "",
        role: str = "",
        account: str = "",
        command: str = "",
        max_seconds: float | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_attempts: int | None = None,
        deliver: str = "",
        check: str = "",
    ) -> None:
        self.title = title
        self.description = description
        self.design = design
        self.acceptance_criteria = acceptance_criteria
        self.notes = notes
        self.priority = priority
        self.issue_type = issue_type
        self.labels: list[str] = [] if labels is None else labels
        self.deps: list[str] = [] if deps is None else deps  # "id" or "type:id"
        self.parent = parent
        self.cwd = cwd
        self.coder = coder
        self.model = model
        self.role = role
        self.account = account
        self.command = command
        self.max_seconds = max_seconds
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.max_attempts = max_attempts
        self.deliver = deliver  # merge, branch or none ("": the configured default)
        self.check = check  # the command a merge must pass ("": the configured one)


def parse_dep(spec: str) -> tuple[str, str]:
    """'id' -> ('blocks', id); 'type:id' -> (type, id), as beads' --deps takes them."""
    spec = spec.strip()
    if spec.startswith("external:"):
        return "blocks", check_dep_target(spec)
    kind, sep, target = spec.partition(":")
    if not sep:
        kind, target = "blocks", spec
    check_dep_type(kind)
    return kind, check_dep_target(target)


def check_dep_type(kind: str) -> str:
    if not DEP_TYPE_PATTERN.match(kind):
        raise BadInput(
            f"dependency type {kind!r} is not valid",
            hint=f"use one of: {', '.join(KNOWN_DEP_TYPES)}",
        )
    return kind


def resolve_cwd(cwd: str) -> str:
    path = Path(cwd or os.getcwd()).expanduser()
    if not path.is_dir():
        raise BadInput(
            f"working directory {cwd} does not exist",
            hint="pass an existing directory with --cwd DIR (the default is the current one)",
        )
    return str(path.resolve())


def check_limits(max_seconds: float | None, max_cost: float | None) -> None:
    for name, value in (("max-seconds", max_seconds), ("max-cost", max_cost)):
        if value is not None and not 0 < value < float("inf"):  # nan and inf too
            raise BadInput(
                f"--{name} must be a positive number, not {value}", hint=f"for example --{name} 600"
            )


def check_deliver(deliver: str) -> str:
    if deliver not in ("", *DELIVER_MODES):
        raise BadInput(
            f"--deliver {deliver!r} is not a delivery mode",
            hint="use merge (the merge queue), branch (left for you) or none",
        )
    return deliver


def _prefix(snap: Snapshot) -> str:
    prefix = snap.store.cache.id_prefix() or DEFAULT_PREFIX
    return prefix if PREFIX_PATTERN.match(prefix) else DEFAULT_PREFIX


def create(store: Store, new: NewTask, actor: str | None = None) -> Task:
    title = new.title.strip()
    if not title:
        raise BadInput("a task needs a title", hint='fleet bd create "Fix the login bug"')
    if len(title) > 500:
        raise BadInput("the title is longer than 500 characters", hint="put details in -d")
    check_priority(new.priority)
    if new.coder == "shell" and not new.command.strip():
        raise BadInput(
            "a shell task needs a command", hint="add --command 'make test' (run with /bin/sh -c)"
        )
    check_limits(new.max_seconds, new.max_cost)
    cwd = resolve_cwd(new.cwd)
    check_deliver(new.deliver)
    base_branch = head_branch(Path(cwd))
    wanted = [parse_dep(d) for d in new.deps if d.strip()]
    if new.parent:
        wanted.append((PARENT_TYPE, check_id(new.parent, "parent id")))

    def build(snap: Snapshot) -> tuple[Change, Task]:
        for _, target in wanted:
            if not target.startswith("external:") and snap.get(target) is None:
                raise NotFound(
                    f"dependency {target} does not exist",
                    hint="create it first, or check the id with `fleet bd list --all`",
                )
        stamp = now_iso()
        count = snap.store.cache.count()
        prefix = _prefix(snap)
        task_id, tries = new_id(prefix, count), 0
        while snap.get(task_id) is not None:  # beads: after 10 collisions, one character more
            tries += 1
            task_id = new_id(prefix, count, tries // 10)
        task = Task(
            id=task_id,
            title=title,
            description=new.description,
            design=new.design,
            acceptance_criteria=new.acceptance_criteria,
            notes=new.notes,
            priority=new.priority,
            issue_type=new.issue_type or "task",
            labels=sorted(set(new.labels)),
            dependencies=[Dependency(task_id, t, k, stamp) for k, t in wanted],
            created_at=stamp,
            updated_at=stamp,
            cwd=cwd,
            coder=new.coder,
            model=new.model,
            role=new.role,
            account=new.account,
            command=new.command,
            max_seconds=new.max_seconds,
            max_tokens=new.max_tokens,
            max_cost=new.max_cost,
            max_attempts=new.max_attempts,
            deliver=new.deliver,
            check=new.check,
            base_branch=base_branch,
        )
        change = Change(f"create {task_id}: {_short(title)}", "created")
        change.put(task)
        return change, task

    return store.mutate(build, actor)


UPDATABLE = (
    "title",
    "description",
    "design",
    "acceptance_criteria",
    "notes",
    "priority",
    "status",
    "assignee",
    "coder",
    "model",
    "role",
    "account",
    "command",
    "cwd",
    "max_seconds",
    "max_tokens",
    "max_cost",
    "max_attempts",
    "deliver",
    "check",
)


def update(
    store: Store,
    task_id: str,
    fields: dict[str, Any],
    add_labels: Iterable[str] = (),
    remove_labels: Iterable[str] = (),
    actor: str | None = None,
) -> Task:
    check_id(task_id)
    fields = {k: v for k, v in fields.items() if v is not None}
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise BadInput(f"cannot update {', '.join(sorted(unknown))}", hint=", ".join(UPDATABLE))
    if "priority" in fields:
        check_priority(int(fields["priority"]))
    check_limits(fields.get("max_seconds"), fields.get("max_cost"))
    if "status" in fields and fields["status"] not in FLEET_STATUSES:
        raise BadInput(
            f"status {fields['status']!r} is not valid",
            hint=f"use one of {', '.join(FLEET_STATUSES)}",
        )
    if "cwd" in fields:
        fields["cwd"] = resolve_cwd(str(fields["cwd"]))
    check_deliver(str(fields.get("deliver", "")))
    if "title" in fields and not str(fields["title"]).strip():
        raise BadInput("the title cannot be empty", hint='--title "Fix the login bug"')
    adds, removes = list(add_labels), list(remove_labels)

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        if "status" in fields and fields["status"] != task.status:
            _refuse_if_running(task)
        before = task.to_dict()
        for key, value in fields.items():
            setattr(task, key, value)
        if "status" in fields:
            _status_side_effects(task, before.get("status", ""))
        queued = (task.delivery or {}).get("state") == "queued"
        if queued and fields.get("deliver") in ("branch", "none"):  # out of the merge queue
            task.delivery = {**(task.delivery or {}), "state": fields["deliver"]}
        task.labels = sorted((set(task.labels) | set(adds)) - set(removes))
        if task.to_dict() == before:
            return None, task
        task.updated_at = now_iso()
        changed = sorted(k for k in task.to_dict() if task.to_dict().get(k) != before.get(k))
        changed = [k for k in changed if k != "updated_at"]
        change = Change(f"update {task_id}: {', '.join(changed)}", "updated")
        change.put(task)
        return change, task

    return store.mutate(build, actor)


def _status_side_effects(task: Task, old: str) -> None:
    if task.status == "closed" and old != "closed":
        task.closed_at = now_iso()
    elif task.status != "closed":
        task.closed_at = ""
        task.close_reason = ""
    if task.status == "open":
        task.status_reason = ""
        task.not_before = ""


def _refuse_if_running(task: Task) -> None:
    if task.run is not None:
        raise BadInput(
            f"task {task.id} is running (attempt {task.run.get('attempt', '?')})",
            hint=f"stop it first with `fleet kill {task.id}`",
        )


def close(store: Store, ids: list[str], reason: str = "", actor: str | None = None) -> list[Task]:
    for task_id in ids:
        check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change | None, list[Task]]:
        tasks = [snap.need(i) for i in dict.fromkeys(ids)]
        for task in tasks:
            _refuse_if_running(task)
        todo = [t for t in tasks if t.status != "closed"]
        stamp = now_iso()
        for task in todo:
            task.status, task.closed_at, task.updated_at = "closed", stamp, stamp
            task.close_reason = reason
            task.status_reason = ""
        if not todo:
            return None, tasks
        names = " ".join(t.id for t in todo)
        change = Change(f"close {names}" + (f": {_short(reason)}" if reason else ""), "closed")
        for task in todo:
            change.put(task)
        return change, tasks

    return store.mutate(build, actor)


def reopen(store: Store, task_id: str, actor: str | None = None) -> Task:
    check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        _refuse_if_running(task)
        if task.status == "open":
            return None, task
        task.status, task.closed_at, task.close_reason = "open", "", ""
        task.status_reason, task.not_before = "", ""
        task.updated_at = now_iso()
        change = Change(f"reopen {task_id}", "reopened")
        change.put(task)
        return change, task

    return store.mutate(build, actor)


def add_dep(
    store: Store, task_id: str, target: str, kind: str = "blocks", actor: str | None = None
) -> Task:
    check_id(task_id)
    check_dep_target(target)
    check_dep_type(kind)
    if task_id == target:
        raise BadInput(f"task {task_id} cannot depend on itself", hint="name two different tasks")

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        if not target.startswith("external:"):
            snap.need(target)
        if any(d.depends_on_id == target and d.type == kind for d in task.dependencies):
            return None, task
        if kind in BLOCKING_TYPES or kind == PARENT_TYPE:
            cycle = find_cycle(snap.store.cache.edges(), task_id, target)
            if cycle:
                raise BadInput(
                    f"{task_id} -> {target} would make a cycle: {' -> '.join(cycle)}",
                    hint=f"remove one of its links with `fleet bd dep remove {target} ...`",
                )
        task.dependencies.append(Dependency(task_id, target, kind, now_iso()))
        task.updated_at = now_iso()
        change = Change(f"link {task_id} -> {target} ({kind})", "dep_added")
        change.put(task)
        return change, task

    return store.mutate(build, actor)


def remove_dep(store: Store, task_id: str, target: str, actor: str | None = None) -> Task:
    check_id(task_id)
    check_dep_target(target)

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        kept = [d for d in task.dependencies if d.depends_on_id != target]
        if len(kept) == len(task.dependencies):
            raise NotFound(
                f"task {task_id} does not depend on {target}",
                hint=f"see its dependencies with `fleet bd show {task_id}`",
            )
        task.dependencies = kept
        task.updated_at = now_iso()
        change = Change(f"unlink {task_id} -> {target}", "dep_removed")
        change.put(task)
        return change, task

    return store.mutate(build, actor)


def _short(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
