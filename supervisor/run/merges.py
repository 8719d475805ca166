"""The merge queue the supervisor runs: closed tasks' branches merged onto their base branches
(`merge`), one at a time per repository, in the order the tasks closed.

A task enters the queue when its attempt closes it (`on_close`, in the same commit as the close).
A conflict or a red check reopens the task with the conflict or the check's output as its
handoff; after `max_attempts` such failures it is blocked with the reason (`settle`, the one
place delivery changes a task's status, through `status.move`). The queue lives in the store
(`delivery.state = queued`), so a supervisor killed at any instant leaves it for the next one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from supervisor import gates
from supervisor.config import Config
from supervisor.model import Task, iso
from supervisor.run import merge
from supervisor.run.attempt import merge_line
from supervisor.run.merge import Merged, repo_of
from supervisor.run.ops import Op
from supervisor.run.status import move
from supervisor.store import quarantine
from supervisor.store.store import Store

LOOK_EVERY = 2.0  # seconds between two looks at a queue that waits (a dirty tree)
RESCAN_EVERY = 600.0  # seconds between two reads of the whole queue from the store
RETRIES = 5  # merges of one task in a row that may fail unexpectedly before it is blocked


def mode(task: Task, config: Config) -> str:
    """Where the task's work goes: its own `--deliver`, else its role's, else the fleet's."""
    role = config.roles.get(task.role) if task.role else None
    return task.deliver or (role.deliver if role else "") or config.deliver


def on_close(task: Task, config: Config, now: float) -> None:
    """A task just closed by its attempt: queue its work for delivery (called inside the
    attempt's record, so the queue entry lands in the same commit as the close)."""
    if task.status != "closed":
        return
    work = next((a.get("work") for a in reversed(task.attempts) if a.get("work")), None)
    if work and work.get("error"):  # git refused the commit: the work is in the worktree
        task.delivery = {"state": "uncommitted", "error": str(work["error"])}
        return
    if not work or not work.get("head"):
        return
    state = task.delivery or {}
    same_round = int(state.get("retry_base") or 0) == task.retry_base  # `fleet retry` resets
    kept = {"failures": state["failures"]} if same_round and state.get("failures") else {}
    if task.retry_base:
        kept["retry_base"] = task.retry_base
    how = mode(task, config)
    branch = str(work.get("branch") or f"fleet/{task.id}")
    if how == "merge" and gates.hold(task, config, branch, kept, iso(now)):
        return  # its approvals come first (`fleet approve`, a reviewer's verdict)
    if how == "merge":
        task.delivery = {**kept, "state": "queued", "queued_at": iso(now), "branch": branch}
    elif how == "branch":
        task.delivery = {**kept, "state": "branch", "branch": branch}
    else:
        task.delivery = {**kept, "state": "kept", "branch": branch}


def settle(task: Task, done: Merged, now: float, max_attempts: int) -> bool:
    """Apply a merge's outcome to the task: the one place delivery changes a task's status
    (reopen on a conflict or a red check, block after `max_attempts` of them or on an error).
    False when there is nothing to change."""
    state = dict(task.delivery or {})
    if done.kind == "merged":
        task.delivery = {
            **state,
            "state": "merged",
            "commit": done.commit,
            "base": done.base,
            "merged_at": iso(now),
            "pruned": done.pruned,
        }
        task.delivery.pop("waiting", None)
        task.delivery.pop("handoff", None)
        return True
    if done.kind == "waiting":
        if state.get("waiting") == done.text:
            return False
        task.delivery = {**state, "waiting": done.text}
        return True
    if done.kind not in ("conflict", "red", "error") or task.status != "closed":
        return False
    if int(state.get("retry_base") or 0) != task.retry_base:
        state["failures"] = 0
    failures = int(state.get("failures") or 0) + 1
    first = done.text.strip().splitlines()[0] if done.text.strip() else done.kind
    state.pop("waiting", None)
    task.delivery = {**state, "failures": failures, "handoff": done.text}
    if done.kind == "error" or failures >= max_attempts:
        task.delivery["state"] = "blocked"
        why = (
            f"delivery failed: {first}"
            if done.kind == "error"
            else f"its merge failed {failures} times; the last: {first}"
        )
        move(task, "blocked", why, now)
        return True
    task.delivery["state"] = "reopened"
    move(task, "open", f"reopened by the merge queue: {first}", now)
    return True


def settle_op(done: Merged, now: float, config: Config) -> Op:
    def change(task: Task) -> bool:
        limit = task.max_attempts or config.max_attempts
        return settle(task, done, now, limit)

    events = {"red": "check_failed", "conflict": "merge_conflict", "error": "merge_failed"}
    event = events.get(done.kind, "merge_waiting" if done.kind == "waiting" else done.kind)
    return Op(done.task_id, event, change)


class Queue:
    """The supervisor's merge queue: at most one merge under way per repository, in a thread
    of its own (a check may take minutes; the loop goes on), oldest close first."""

    def __init__(self, store: Store, actor: str, background: bool = True) -> None:
        self.store = store
        self.actor = actor
        self.background = background
        self.busy: dict[Path, str] = {}  # repository -> the task whose merge is under way
        self.threads: list[threading.Thread] = []
        self.done: list[Merged] = []
        self.lock = threading.Lock()
        self.seen = ""  # the commit last looked at
        self.look_at = 0.0
        self.line: dict[str, str] = {}  # task id -> where it stands, for `fleet tasks`
        self.known: set[str] = set()  # tasks that may be queued: the queue, read incrementally
        self.rescan_at = 0.0  # when to read the whole queue from the store again
        self.seq = 0  # the cache's write counter when the queue was last read
        self.quarantined: dict[str, dict[str, Any]] = {}  # subject -> record: not delivered
        self.retries: dict[str, int] = {}  # task id -> merges in a row that raised
        self.hold: dict[str, float] = {}  # task id -> not merged again before then (a backoff)
        self.stalled: set[str] = set()  # tasks whose merge waits for a person (a dirty tree)

    def step(self, commit: str | None, config: Config, now: float) -> list[Op]:
        """Ops for the merges that ended since the last step; start the next ones."""
        ops = self._drain(now, config)
        if ops:  # their tasks are still queued until these ops are committed: look next time
            self.look_at = 0.0
            return ops
        if (commit or "") != self.seen or now >= self.look_at:
            self.seen, self.look_at = commit or "", now + LOOK_EVERY
            self._look(config, now)
            ops += self._drain(now, config)  # merges run in the loop's thread (tests)
        return ops

    def pending(self, ended: list[str] | None = None) -> int:
        """Tasks queued or merging, but not those that wait for a person (a dirty tree).
        `ended`: tasks whose attempts just ended (each may have just been queued; the next look
        tells)."""
        if ended:
            self.known.update(ended)
            self.look_at = 0.0
        return len((self.known | set(self.busy.values())) - self.stalled)

    def _drain(self, now: float, config: Config) -> list[Op]:
        with self.lock:
            done, self.done = self.done, []
        ended = {d.task_id for d in done}
        self.busy = {k: t for k, t in self.busy.items() if t not in ended}
        if any(d.kind == "moved" for d in done):
            self.look_at = 0.0  # the base moved under a merge: try again at once
        for d in done:
            if d.kind != "retry":
                self.retries.pop(d.task_id, None)
                self.hold.pop(d.task_id, None)
                continue
            self.retries[d.task_id] = self.retries.get(d.task_id, 0) + 1
            self.hold[d.task_id] = now + LOOK_EVERY * 2 ** self.retries[d.task_id]
            if self.retries[d.task_id] >= RETRIES:  # not a passing hiccup: say so, block it
                d.kind, d.text = "error", f"the merge failed {RETRIES} times: {d.text}"
                self.retries.pop(d.task_id)
        line = dict(self.line)
        for d in done:
            if d.kind == "waiting":
                line[d.task_id] = d.text
                self.stalled.add(d.task_id)
            else:
                line.pop(d.task_id, None)
                self.stalled.discard(d.task_id)
        self._show(line)
        return [settle_op(d, now, config) for d in done if d.kind not in ("moved", "retry")]

    def _look(self, config: Config, now: float) -> None:
        """Start the oldest queued merge of each repository that has none under way. The queue
        is read whole from the store at the start and every RESCAN_EVERY seconds (one query over
        the closed tasks); in between, only the tasks whose attempts ended are looked at."""
        if now >= self.rescan_at:
            self.rescan_at = now + RESCAN_EVERY
            self.seq = self.store.cache.touched()
            self.known = {str(b["id"]) for b in self.store.cache.delivering()}
        else:  # the tasks written since the last look: gated work an approval queued
            fresh, seq = self.store.cache.queued_since(self.seq)
            self.known.update(fresh)
            if seq < self.seq:  # the cache was rebuilt: read the whole queue at the next look
                self.rescan_at = 0.0
            self.seq = seq
        queued = []
        for task_id in sorted(self.known):
            task = self.store.cache.get(task_id)
            if (
                task is None
                or task.status != "closed"
                or (task.delivery or {}).get("state") != "queued"
            ):
                self.known.discard(task_id)
                continue
            queued.append(task)
        queued.sort(key=lambda t: (str((t.delivery or {}).get("queued_at")), t.id))
        line: dict[str, str] = {}
        for task in queued:
            repo = repo_of(task, self.store.home)
            key = repo.common if repo else Path(task.cwd)
            if now < self.hold.get(task.id, 0.0):
                line[task.id] = "merge failed; tried again shortly"
                continue
            last = task.attempts[-1] if task.attempts else {}
            coder, account = str(last.get("coder") or ""), str(last.get("account") or "")
            held = quarantine.blocks(self.quarantined, task.id, task.role, coder, account)
            if held:  # a quarantined subject's work is not delivered until it is released
                line[task.id] = held.replace("waits:", "its merge waits:", 1)
                continue
            if key in self.busy:
                merging = self.busy[key] == task.id
                waiting = str((task.delivery or {}).get("waiting") or "queued to merge")
                line[task.id] = "merging" if merging else waiting
                continue
            self.busy[key] = task.id
            line[task.id] = str((task.delivery or {}).get("waiting") or "merging")
            self._start(task, config)
        self._show(line)

    def _show(self, line: dict[str, str]) -> None:
        if line != self.line:
            self.line = line
            _write_line(self.store.home / "live" / "merges.json", line)

    def _start(self, task: Task, config: Config) -> None:
        def work() -> None:
            try:
                result = merge.merge_one(task, self.store.home, config, self.actor)
            except Exception as exc:  # git or the host failed: try again a little later
                result = Merged(task.id, "retry", f"{type(exc).__name__}: {exc}")
            with self.lock:
                self.done.append(result)

        if not self.background:
            work()
            return
        self.threads = [t for t in self.threads if t.is_alive()]
        thread = threading.Thread(target=work, daemon=True, name=f"merge {task.id}")
        self.threads.append(thread)
        thread.start()

    def wait(self, timeout: float) -> None:
        for thread in list(self.threads):
            thread.join(timeout)


def _write_line(path: Path, line: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(line))
    tmp.replace(path)


def waiting(home: Path) -> dict[str, str]:
    """Where each queued task stands, as the running supervisor last wrote it."""
    return merge_line(home)
