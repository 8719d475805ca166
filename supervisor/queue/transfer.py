"""`fleet bd import` and `fleet bd export`: beads JSONL in and out of the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervisor.errors import BadInput
from supervisor.model import Task
from supervisor.queue.beads import export_line, parse_jsonl
from supervisor.store.store import Change, Snapshot, Store

# Bookkeeping the supervisor owns: an import never overwrites it on a task the store has.
RUNTIME = ("attempts", "run", "status_reason", "not_before")


def import_file(store: Store, path: Path, dry_run: bool = False) -> dict[str, Any]:
    """Upsert every issue of a beads JSONL file in one commit; all or nothing."""
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
        change = Change(f"import {len(plan.tasks)} tasks from {path.name}", "imported")
        for task in plan.tasks:
            old = snap.get(task.id)
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
            "dry_run": dry_run,
        }
        change.details = (
            f"{len(created)} created, {len(updated)} updated, {len(unchanged)} unchanged"
        )
        return (None if dry_run else change), report

    return store.mutate(build)


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
