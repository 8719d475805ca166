"""What people do to running work: kill, retry, pause and resume."""

from __future__ import annotations

import time

from supervisor.errors import BadInput, FleetError
from supervisor.model import Task, check_id, iso
from supervisor.run import daemon as service
from supervisor.store.store import Change, Snapshot, Store, user_actor


def kill(store: Store, task_id: str, block: str = "", timeout: float = 60.0) -> Task:
    """Stop a task's running attempt (its whole process tree); open it again, or block it."""
    check_id(task_id)
    actor = user_actor()

    def request(snap: Snapshot) -> tuple[Change, Task]:
        task = snap.need(task_id)
        if task.run is None or task.status != "in_progress":
            raise BadInput(
                f"task {task_id} is not running (status {task.status})",
                hint=f"see it with `fleet bd show {task_id}`",
            )
        task.run = {**task.run, "stop": {"by": actor, "block": block, "at": iso(time.time())}}
        change = Change(f"kill {task_id}" + (f": {block}" if block else ""), "kill_requested")
        change.put(task)
        return change, task

    asked = store.mutate(request)
    attempt = (asked.run or {}).get("attempt")
    if service.running(store) is None:
        _stop_without_supervisor(store, asked)
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = store.get(task_id)
        if (task.run or {}).get("attempt") != attempt:
            return task
        time.sleep(0.05)
    raise FleetError(
        f"task {task_id} is still stopping after {timeout:g} s",
        hint="check `fleet supervisor status`; the supervisor stops it at its next tick",
    )


def _stop_without_supervisor(store: Store, task: Task) -> None:
    """No supervisor runs: stop the agent here and record the attempt as killed."""
    from supervisor.run.process import OsProcesses
    from supervisor.run.supervisor import Supervisor

    sup = Supervisor(store, OsProcesses(), background_stops=False)
    sup.stopping = "graceful"  # claim nothing; the stop request stops this task's agent only
    deadline = time.time() + 60
    while time.time() < deadline:
        sup.tick(time.time())
        if task.id not in sup.running:
            return


def retry(store: Store, task_id: str) -> Task:
    """Give a blocked or failed task a fresh set of attempts, now."""
    check_id(task_id)

    def build(snap: Snapshot) -> tuple[Change, Task]:
        task = snap.need(task_id)
        if task.run is not None:
            raise BadInput(
                f"task {task_id} is running", hint=f"stop it first with `fleet kill {task_id}`"
            )
        task.status, task.closed_at, task.close_reason = "open", "", ""
        task.status_reason, task.not_before = "", ""
        task.retry_base = len(task.attempts)
        task.updated_at = iso(time.time())
        change = Change(f"retry {task_id}", "retried")
        change.put(task)
        return change, task

    return store.mutate(build)


def set_paused(store: Store, paused: bool) -> None:
    from supervisor.queue import configure

    configure.set_values(store, [f"paused={'true' if paused else 'false'}"])
