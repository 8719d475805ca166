"""`fleet bd import` and `fleet bd export`: beads JSONL in and out of the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervisor import lifecycle, limits
from supervisor.errors import BadInput
from supervisor.graph import some_cycle
from supervisor.model import BLOCKING_TYPES, PARENT_TYPE, Task
from supervisor.queue.beads import ImportPlan, export_line, parse_jsonl
from supervisor.store.store import Change, Snapshot, Store

# Bookkeeping the supervisor owns: an import never overwrites it on a task the store has.
RUNTIME = ("attempts", "status_reason", "not_before")


# Why an imported task with a shell command waits (its status is deferred) for the user's word.
HELD = (
    "imported with a shell command: read it, then run it with `fleet bd update {id} --status open`"
)


def import_file(
    store: Store, path: Path, dry_run: bool = False, trust: bool = False
) -> dict[str, Any]:
    """Upsert every issue of a beads JSONL file in one commit; all or nothing.

    What an import brings is data, never a claim on a process: run records are dropped and an
    `in_progress` task comes in as open. A task with a shell command arrives deferred unless
    `trust` (a file from elsewhere must not make a command runnable without the user's word).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
    if size > limits.FILE_MAX:
        raise BadInput(
            f"{path} is {size} bytes, more than the {limits.FILE_MAX} an import takes",
            hint="split it into several files and import each",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="export it again with `bd export`",
        ) from None
    plan = parse_jsonl(text)
    if plan.errors:
        shown = "; ".join(f"line {n}: {why}" for n, why in plan.errors[:10])
        more = f" (and {len(plan.errors) - 10} more)" if len(plan.errors) > 10 else ""
        raise BadInput(
            f"{path} has {len(plan.errors)} malformed line(s), nothing was imported: {shown}{more}",
            hint="fix those lines (or drop them) and import again",
        )

    def build(snap: Snapshot) -> tuple[Change | None, dict[str, Any]]:
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        commands: list[dict[str, Any]] = []
        change = Change(f"import {len(plan.tasks)} tasks from {path.name}", "imported")
        olds = {task.id: snap.get(task.id) for task in plan.tasks}
        _refuse_cycles(snap, plan)
        for task in plan.tasks:
            old = olds[task.id]
            _as_data(task, old)
            if task.command and _hold(task, old, trust):
                commands.append(
                    {
                        "id": task.id,
                        "line": plan.lines.get(task.id, 0),
                        "command": task.command,
                        "held": task.status == "deferred",
                    }
                )
            if old is not None:
                _keep_runtime(task, old)
                if task.to_dict() == old.to_dict():
                    unchanged.append(task.id)
                    continue
            (created if old is None else updated).append(task.id)
            change.put(task)
        report = {
            "source": str(path),
            "created": len(created),
            "updated": len(updated),
            "unchanged": len(unchanged),
            "skipped": plan.skipped,
            "ids": created + updated,
            "commands": commands,
            "dry_run": dry_run,
        }
        change.details = (
            f"{len(created)} created, {len(updated)} updated, {len(unchanged)} unchanged"
        )
        return (None if dry_run else change), report

    return store.mutate(build)


def _refuse_cycles(snap: Snapshot, plan: ImportPlan) -> None:
    """A dependency cycle would keep its tasks from ever running: refused, naming a line."""
    edges = snap.store.cache.edges()
    kinds = (*BLOCKING_TYPES, PARENT_TYPE)
    for task in plan.tasks:
        edges[task.id] = [d.depends_on_id for d in task.dependencies if d.type in kinds]
    cycle = some_cycle(edges)
    if cycle:
        line = next((plan.lines[i] for i in cycle if i in plan.lines), 0)
        raise BadInput(
            f"line {line}: the dependencies make a cycle: {' -> '.join(cycle)};"
            " nothing was imported",
            hint="drop one of those dependencies from the file and import again",
        )


def _as_data(task: Task, old: Task | None) -> None:
    """Drop what only a supervisor may write: the run record, and in_progress without one."""
    lifecycle.imported(task, old)


def _hold(task: Task, old: Task | None, trust: bool) -> bool:
    """Whether `task`'s command is new to this store (then listed); defers it unless `trust`."""
    known = old is not None and old.command == task.command and old.coder == task.coder
    if (
        known
        and old is not None
        and old.status == "deferred"
        and old.status_reason.startswith(HELD[:30])
    ):
        lifecycle.defer_imported(task, "", old)  # still waits
    if known:
        return False
    if not trust and task.status in ("open", "in_progress", "blocked"):
        lifecycle.defer_imported(task, HELD.format(id=task.id))
    return True


def _keep_runtime(task: Task, old: Task) -> None:
    for name in RUNTIME:
        if not getattr(task, name):
            setattr(task, name, getattr(old, name))


def export_text(store: Store) -> str:
    return "".join(export_lines(store))


def export_lines(store: Store) -> Iterator[str]:
    """Every task as beads JSONL, one line at a time (the queue is never held in memory)."""
    store.snapshot()
    dependents = store.cache.dependent_counts()
    for body in store.cache.stream():
        task = Task.from_dict(body)
        yield export_line(task, dependents.get(task.id, 0))
