"""What people do to running work: kill (hold, requeue, block), cancel, retry, resume, pause.

`fleet kill` asks the running supervisor to stop the attempt (a stop request on the task's run
record) and waits for the attempt's end to be recorded. With no supervisor running, the CLI
stops the agent itself through the process seam and records the attempt the way the supervisor
would (`ending`), with no supervisor built.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any

from supervisor import config as config_mod
from supervisor import lifecycle
from supervisor.errors import FleetError
from supervisor.lifecycle import Ending, Policy
from supervisor.model import Task, check_id
from supervisor.run import adopt, ending
from supervisor.run import daemon as service
from supervisor.run.attempt import live_dir
from supervisor.run.ops import commit
from supervisor.run.process import Processes, read_rc
from supervisor.store.store import Change, Snapshot, Store, user_actor

STOP_WAIT = 60.0  # seconds `fleet kill` waits for the attempt's end to be recorded


@dataclass
class Stopped:
    """What a stop did: the task as it is now, and the record of the attempt it stopped."""

    task: Task
    then: str  # hold, requeue, block, cancel
    n: int = 0  # the attempt stopped (0: none ran)
    record: dict[str, Any] | None = None

    def message(self) -> str:
        """What is true now, in one line."""
        task, n = self.task, self.n
        if self.record is None:  # nothing ran: cancelled directly
            return f"cancelled {task.id}; {lifecycle.describe(task)}"
        outcome = str(self.record.get("outcome", "?"))
        if outcome != "killed":
            return (
                f"{task.id}: attempt {n} ended by itself before it was stopped ({outcome}); "
                f"it is {lifecycle.describe(task)}"
            )
        head = f"stopped {task.id} (attempt {n})"
        if self.then == "hold":
            return f"{head}; held until `fleet retry {task.id}` or `fleet resume {task.id}`"
        if self.then == "cancel":
            return f"{head}; cancelled: {lifecycle.describe(task)}"
        if self.then == "block":
            return f"{head}; {lifecycle.describe(task)}"
        if task.run is not None and task.run.attempt > n:
            return f"{head}; requeued, and claimed again already (attempt {task.run.attempt})"
        return f"{head}; requeued: it is {task.status}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.task.id,
            "stopped_attempt": self.n or None,
            "then": self.then,
            "outcome": (self.record or {}).get("outcome"),
            "status": self.task.status,
            "status_reason": self.task.status_reason,
            "close_reason": self.task.close_reason,
            "message": self.message(),
        }


def kill(
    store: Store,
    task_id: str,
    then: str = "hold",
    reason: str = "",
    timeout: float = STOP_WAIT,
    processes: Processes | None = None,
) -> Stopped:
    """Stop a task's running attempt (its whole process tree); then hold, requeue, block or
    cancel the task. Returns once the attempt's end is recorded."""
    check_id(task_id)
    actor = user_actor()

    def request(snap: Snapshot) -> tuple[Change, Task]:
        task = snap.need(task_id)
        lifecycle.request_stop(task, actor, then, reason, time.time())
        change = Change(f"kill {task_id}" + (f": {reason}" if reason else ""), "kill_requested")
        change.put(task)
        return change, task

    asked = store.mutate(request)
    assert asked.run is not None
    n = asked.run.attempt
    if service.running(store) is None:
        _stop_here(store, asked, actor, processes or _os_processes())
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = store.get(task_id)
        if lifecycle.current(task, n) is None:
            record = next((a for a in task.attempts if a.get("n") == n), None)
            return Stopped(task, then, n, record)
        time.sleep(0.05)
    raise FleetError(
        f"task {task_id} is still stopping after {timeout:g} s",
        hint="check `fleet supervisor status`; the supervisor stops it at its next tick",
    )


def cancel(
    store: Store, task_id: str, reason: str = "", processes: Processes | None = None
) -> Stopped:
    """Close a task as not done; a running attempt is stopped first."""
    check_id(task_id)
    task = store.get(task_id)
    if task.run is not None:
        return kill(store, task_id, "cancel", reason, processes=processes)

    def build(snap: Snapshot) -> tuple[Change, Task]:
        fresh = snap.need(task_id)
        lifecycle.cancel(fresh, reason, time.time())
        change = Change(f"cancel {task_id}" + (f": {reason}" if reason else ""), "cancelled")
        change.put(fresh)
        return change, fresh

    return Stopped(store.mutate(build), "cancel")


def _stop_here(store: Store, task: Task, actor: str, processes: Processes) -> None:
    """No supervisor runs: stop the agent from here and record the attempt as stopped."""
    assert task.run is not None
    now = time.time()
    try:
        config = config_mod.load(store.cache.config_text())
    except FleetError:  # a bad configuration: stop with the defaults
        config = config_mod.Config()
    policy = Policy(config.max_attempts, config.backoff_seconds, config.backoff_max_seconds)
    attempt = adopt.rebuild(store, task, config.coder, now)
    stop = task.run.stop
    if attempt.handle is None:  # its supervisor died before the agent started
        if task.run.token:
            processes.sweep(task.run.token)
        end: Ending = lifecycle.stopped(stop)
        op = ending.abandon_op(task.id, attempt.n, end, actor, now, policy)
    else:
        processes.terminate(attempt.handle, config.grace_seconds)
        code = processes.poll(attempt.handle)
        code = code if code is not None else (read_rc(attempt.files.rc) or -9)
        now = time.time()
        attempt.read_output(now)
        attempt.flush(now)
        attempt.stop = "killed"
        end = ending.classify(attempt, code, stop)
        summary = ending.record(attempt, end, code, now, actor, config.prices)
        op = ending.end_op(attempt, end, summary, now, policy)
    if task.id in commit(store, actor, [op]):
        shutil.rmtree(live_dir(store.home, task.id), ignore_errors=True)


def _os_processes() -> Processes:
    from supervisor.run.process import OsProcesses

    return OsProcesses()


def retry(store: Store, task_id: str, force: bool = False) -> Task:
    """Open a task again, now, with a fresh set of attempts (a closed, done one only with
    `force`)."""
    check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change, Task]:
        task = snap.need(task_id)
        lifecycle.retry(task, time.time(), force)
        change = Change(f"retry {task_id}", "retried")
        change.put(task)
        return change, task

    return store.mutate(build)


def resume(store: Store, task_id: str) -> Task:
    """Open a held task again (stopped by `fleet kill`), its attempts kept."""
    check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change, Task]:
        task = snap.need(task_id)
        lifecycle.resume(task, time.time())
        change = Change(f"resume {task_id}", "resumed")
        change.put(task)
        return change, task

    return store.mutate(build)


def set_paused(store: Store, paused: bool) -> None:
    from supervisor.queue import configure

    configure.set_values(store, [f"paused={'true' if paused else 'false'}"])
