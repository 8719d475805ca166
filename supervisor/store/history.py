"""The audit trail, read from the store's git history: who did what to which task, and when."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from supervisor.errors import NotFound
from supervisor.model import check_id, iso
from supervisor.store.paths import every_task_path
from supervisor.store.store import Store

FIELD, RECORD = "\x1f", "\x1e"


@dataclass
class Entry:
    commit: str
    time: str
    actor: str
    event: str
    summary: str
    tasks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def entries(store: Store, limit: int = 20, task_id: str = "") -> list[Entry]:
    """The newest `limit` commits (0: all), optionally only those that touched one task."""
    if task_id:
        check_id(task_id)
    if store.head() is None:
        return _known(task_id, [])
    args = ["log", f"--format=%H{FIELD}%ct{FIELD}%B{RECORD}", "refs/heads/main"]
    if limit > 0:
        args.insert(1, f"-n{limit}")
    if task_id:
        args += ["--", *every_task_path(task_id)]  # before and after a migration
    out = store.git.out(*args)
    result = []
    for record in out.split(RECORD):
        record = record.strip("\n")
        if not record:
            continue
        commit, stamp, body = record.split(FIELD, 2)
        result.append(_entry(commit, int(stamp), body))
    return _known(task_id, result)


def _known(task_id: str, found: list[Entry]) -> list[Entry]:
    """`found`, unless it is empty because the task never existed (every task has a commit)."""
    if task_id and not found:
        raise NotFound(
            f"task {task_id} does not exist",
            hint="run `fleet bd list --all` to see the tasks in this store",
        )
    return found


def _entry(commit: str, stamp: int, body: str) -> Entry:
    lines = body.strip().splitlines()
    entry = Entry(
        commit=commit, time=iso(stamp), actor="", event="", summary=lines[0] if lines else ""
    )
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key == "Fleet-Actor":
            entry.actor = value
        elif key == "Fleet-Event":
            entry.event = value
        elif key == "Fleet-Task":
            entry.tasks.append(value)
    return entry
