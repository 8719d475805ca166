"""What one tick changes, as operations re-applied to the newest state, and their commit."""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from supervisor.model import Task
from supervisor.store.store import Change, Snapshot, Store

Apply = Callable[[Task], bool]  # change a fresh copy of the task; False: leave it alone
Spawn = Callable[[Snapshot, Task], list[Task]]  # new tasks the changed one brings (its subtasks)
WRITERS = 4  # threads writing the ops' files as objects


@dataclass
class Op:
    """One change to one task (or, with no task, to other files of the store).

    It is re-applied to the newest state when the commit has to retry.
    """

    task_id: str
    event: str
    apply: Apply | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    ended: bool = False  # the attempt is over: its live files go once this is committed
    spawn: Spawn | None = None  # after `apply`: tasks to create in the same commit


@dataclass
class TickReport:
    claimed: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)  # (task id, outcome)
    running: int = 0
    waiting: int = 0  # ready now or after a backoff
    merging: int = 0  # closed tasks whose work the merge queue has yet to deliver


def commit(store: Store, actor: str, ops: list[Op]) -> set[str]:
    """Publish ops in one commit; return the ids of the tasks whose op applied."""
    if not ops:
        return set()
    _write_ahead(store, {data for op in ops for data in op.files.values()})

    def build(snap: Snapshot) -> tuple[Change | None, set[str]]:
        change = Change("", "")
        applied: set[str] = set()
        events: dict[str, list[str]] = {}
        for op in ops:
            if op.apply is not None:
                task = snap.get(op.task_id)
                if task is None or not op.apply(task):
                    continue
                for child in op.spawn(snap, task) if op.spawn else []:
                    change.put(child)
                change.put(task)
                applied.add(op.task_id)
            change.files.update(op.files)
            events.setdefault(op.event, []).append(op.task_id)
        if not change.files:
            return None, applied
        change.summary = "supervisor: " + "; ".join(
            f"{e} {' '.join(i for i in ids if i)}".rstrip() for e, ids in events.items()
        )
        change.event = ",".join(events)
        return change, applied

    return store.mutate(build, actor)


def _write_ahead(store: Store, blobs: Collection[bytes]) -> None:
    """Store the ops' files as git objects before their commit, several at once: creating files
    is most of a commit's cost, and the commit then finds these written. Objects are named by
    their content, so the file of an op that does not apply is only an unreferenced object, which
    `git gc` removes."""
    if len(blobs) <= 1:  # nothing to overlap: the commit writes it
        return
    with ThreadPoolExecutor(min(WRITERS, len(blobs))) as pool:
        written = pool.map(store.blob, blobs)
        list(written)  # a failed write raises here


class Parsed:
    """The tasks of one snapshot, each parsed once (ticks mostly see no change)."""

    def __init__(self) -> None:
        self._commit: str | None = None
        self._tasks: dict[str, Task | None] = {}

    def get(self, snap: Snapshot, task_id: str) -> Task | None:
        if snap.commit != self._commit:
            self._commit, self._tasks = snap.commit, {}
        if task_id not in self._tasks:
            self._tasks[task_id] = snap.get(task_id)
        return self._tasks[task_id]
