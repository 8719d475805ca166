"""What people do to the queue: create, update, close, reopen, link tasks. One commit each."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supervisor import lifecycle
from supervisor.errors import BadInput, NotFound
from supervisor.graph import find_cycle
from supervisor.handoffs import check_requirement, start_reactions
from supervisor.limits import check_text, check_title
from supervisor.model import (
    BLOCKING_TYPES,
    DELIVER_MODES,
    DEP_TYPE_PATTERN,
    ISOLATIONS,
    KNOWN_DEP_TYPES,
    PARENT_TYPE,
    PREFIX_PATTERN,
    Dependency,
    Record,
    Task,
    check_dep_target,
    check_id,
    check_priority,
    iso,
    new_id,
    now_iso,
)
from supervisor.queue import idempotency
from supervisor.store.repo import head_branch
from supervisor.store.store import Change, Snapshot, Store, user_actor

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
        after_children: str = "",
        requires: str = "",  # approvals its work needs: "human,role:reviewer"
        isolation: str = "",
        idempotency_key: str = "",
        deliver: str = "",
        check: str = "",
    ) -> None:
        self.title = title
        self.idempotency_key = idempotency_key  # a retry with the same key makes no second task
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
        self.after_children = after_children
        self.requires = requires
        self.isolation = isolation
        self.deliver = deliver  # merge, branch or none ("": the configured default)
        self.check = check  # the command a merge must pass ("": the configured one)


def check_after_children(value: str) -> str:
    if value not in ("", "close", "integrate"):
        raise BadInput(
            f"--after-children {value!r} is not close or integrate",
            hint="close: the task closes once its subtasks close; integrate: it runs once more",
        )
    return value


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
    check = _checked(new)
    if new.role:  # an unknown role, or one whose coder is missing: refused
        from supervisor.queue.rolecheck import check_role

        check_role(store, new.role)

    key = idempotency.check(new.idempotency_key) if new.idempotency_key else ""

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        keyed = ""
        if key:
            keyed, earlier = _keyed_id(snap, _prefix(snap), key)
            if earlier is not None:
                if earlier.title != check.title:
                    raise BadInput(
                        f"--idempotency-key {key!r} made {earlier.id} with another title",
                        hint="use a new key for new work",
                    )
                return None, earlier  # a retry: the task is there already
        task = new_task(snap, new, check, keyed)
        if key:
            task.metadata[idempotency.META] = key
        change = Change(f"create {task.id}: {_short(task.title)}", "created")
        if check.requires:  # an approval gate of its own (supervisor.gates)
            task.extra["requires"] = check.requires
            change.files.update(start_reactions(snap))
        change.put(task)
        return change, task

    return store.mutate(build, actor)


class _Checked:
    """What `bd create` was given, checked before the store is read."""

    def __init__(
        self,
        title: str,
        cwd: str,
        wanted: list[tuple[str, str]],
        requires: list[str],
        base_branch: str = "",
    ) -> None:
        self.base_branch = base_branch  # the branch checked out where the task was created
        self.title = title
        self.cwd = cwd
        self.wanted = wanted
        self.requires = requires  # approvals its work needs (an approval gate of its own)


def _checked(new: NewTask) -> _Checked:
    title = new.title.strip()
    if not title:
        raise BadInput("a task needs a title", hint='fleet bd create "Fix the login bug"')
    check_title(title)
    check_text(vars(new))
    check_priority(new.priority)
    if new.coder == "shell" and not new.command.strip():
        raise BadInput(
            "a shell task needs a command", hint="add --command 'make test' (run with /bin/sh -c)"
        )
    check_limits(new.max_seconds, new.max_cost)
    check_after_children(new.after_children)
    check_isolation(new.isolation)
    requires = [check_requirement(r.strip()) for r in new.requires.split(",") if r.strip()]
    cwd = resolve_cwd(new.cwd)
    check_deliver(new.deliver)
    base_branch = head_branch(Path(cwd))
    wanted = [parse_dep(d) for d in new.deps if d.strip()]
    if new.parent:
        wanted.append((PARENT_TYPE, check_id(new.parent, "parent id")))
    return _Checked(title, cwd, wanted, requires, base_branch)


def new_task(
    snap: Snapshot, new: NewTask, check: _Checked | None = None, task_id: str = ""
) -> Task:
    """The task `new` describes, with a fresh id (or `task_id`), as `snap` would take it (not yet
    written)."""
    check = check or _checked(new)
    for _, target in check.wanted:
        if not target.startswith("external:") and snap.get(target) is None:
            raise NotFound(
                f"dependency {target} does not exist",
                hint="create it first, or check the id with `fleet bd list --all`",
            )
    stamp = now_iso()
    if not task_id:
        count = snap.store.cache.count()
        prefix = _prefix(snap)
        task_id, tries = new_id(prefix, count), 0
        while snap.get(task_id) is not None:  # beads: after 10 collisions, one character more
            tries += 1
            task_id = new_id(prefix, count, tries // 10)
    return Task(
        id=task_id,
        title=check.title,
        description=new.description,
        design=new.design,
        acceptance_criteria=new.acceptance_criteria,
        notes=new.notes,
        priority=new.priority,
        issue_type=new.issue_type or "task",
        labels=sorted(set(new.labels)),
        dependencies=[Dependency(task_id, t, k, stamp) for k, t in check.wanted],
        created_at=stamp,
        updated_at=stamp,
        cwd=check.cwd,
        coder=new.coder,
        model=new.model,
        role=new.role,
        account=new.account,
        command=new.command,
        max_seconds=new.max_seconds,
        max_tokens=new.max_tokens,
        max_cost=new.max_cost,
        max_attempts=new.max_attempts,
        after_children=new.after_children,
        isolation=new.isolation,
        deliver=new.deliver,
        check=new.check,
        base_branch=check.base_branch,
    )


def _keyed_id(snap: Snapshot, prefix: str, key: str) -> tuple[str, Task | None]:
    """The id of the task `key` names, and that task if an earlier try made it."""
    for widen in range(9):
        task_id = idempotency.task_id(prefix, key, widen)
        found = snap.get(task_id)
        if found is None or idempotency.made_by(found, key):
            return task_id, found
    raise BadInput(f"no free id for --idempotency-key {key!r}", hint="use another key")


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
    "after_children",
    "isolation",
    "deliver",
    "check",
)


def check_isolation(value: str | None) -> None:
    if value and value not in ISOLATIONS:
        raise BadInput(
            f"isolation {value!r} is not valid",
            hint=f"use one of {', '.join(ISOLATIONS)} (or leave it out: the configuration's)",
        )


def update(
    store: Store,
    task_id: str,
    fields: dict[str, Any],
    add_labels: Iterable[str] = (),
    remove_labels: Iterable[str] = (),
    actor: str | None = None,
    reason: str | None = None,
) -> Task:
    check_id(task_id)
    fields = {k: v for k, v in fields.items() if v is not None}
    status = fields.pop("status", None)
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise BadInput(f"cannot update {', '.join(sorted(unknown))}", hint=", ".join(UPDATABLE))
    if "priority" in fields:
        check_priority(int(fields["priority"]))
    check_limits(fields.get("max_seconds"), fields.get("max_cost"))
    check_after_children(str(fields.get("after_children") or ""))
    check_isolation(fields.get("isolation"))
    if status is not None:
        lifecycle.check_status(status)
    if reason is not None and status != "blocked":
        raise BadInput(
            "--reason goes with --status blocked", hint="add `--status blocked`, or drop --reason"
        )
    if "cwd" in fields:
        fields["cwd"] = resolve_cwd(str(fields["cwd"]))
    check_deliver(str(fields.get("deliver", "")))
    if "title" in fields and not str(fields["title"]).strip():
        raise BadInput("the title cannot be empty", hint='--title "Fix the login bug"')
    if "title" in fields:
        check_title(str(fields["title"]))
    check_text(fields)
    adds, removes = list(add_labels), list(remove_labels)

    def build(snap: Snapshot) -> tuple[Change | None, Task]:
        task = snap.need(task_id)
        before = task.to_dict()
        if status is not None:
            lifecycle.set_status(task, status, actor or user_actor(), reason or "", time.time())
        for key, value in fields.items():
            setattr(task, key, value)
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


def close(store: Store, ids: list[str], reason: str = "", actor: str | None = None) -> list[Task]:
    for task_id in ids:
        check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change | None, list[Task]]:
        tasks = [snap.need(i) for i in dict.fromkeys(ids)]
        now = time.time()
        todo = [t for t in tasks if lifecycle.close(t, reason, now)]
        for task in todo:
            task.updated_at = iso(now)
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
        if not lifecycle.reopen(task, time.time()):
            return None, task
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
