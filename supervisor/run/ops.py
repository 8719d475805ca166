"""What one tick changes, as operations re-applied to the newest state, and their commit."""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from supervisor.model import Task
from supervisor.store.store import Change, Snapshot, Store

Apply = Callable[[Task], bool]  # change a fresh copy of the task; False: leave it alone
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
        written = pool.map(lambda data: store.git.write_object("blob", data), blobs)
        list(written)  # a failed write raises here
