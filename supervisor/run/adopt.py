"""Adoption: the attempts a dead supervisor of this host and this home left running, taken over
(their agents run on: only their watcher died), and an attempt rebuilt from its run record."""

from __future__ import annotations

from pathlib import Path

import coders
from coders.base import Outcome
from supervisor import lifecycle
from supervisor.lifecycle import Ending
from supervisor.model import Task, iso, parse_time
from supervisor.run import ownership
from supervisor.run.attempt import Attempt, live_files, load_json
from supervisor.run.ops import Op
from supervisor.run.process import Handle, Processes, read_rc
from supervisor.store.store import Store


def orphans(store: Store, running: set[str], actor: str, host: str) -> list[Task]:
    """The tasks in_progress on this host whose supervisor is not `actor`, nor running here."""
    out = []
    for body in store.cache.select(["in_progress"]):
        task = Task.from_dict(body)
        run = task.run
        if task.id in running or run is None or run.actor == actor:
            continue  # ours
        if run.host and run.host != host:
            continue  # another machine's supervisor owns it (no host: no one does)
        out.append(task)
    return out


def rebuild(store: Store, task: Task, default_coder: str, now: float) -> Attempt:
    """The running attempt of `task` as its run record and live files describe it."""
    run = task.run
    assert run is not None
    files = live_files(store.home, task.id, run.attempt)
    handle_data = run.handle or load_json(files.handle)
    try:
        coder = coders.get(run.coder or default_coder)
    except KeyError:
        coder = coders.get("shell")
    attempt = Attempt(
        task.id,
        run.attempt,
        coder,
        coder.parser(),
        files,
        parse_time(run.started_at or iso(now)),
        checkpoint_at=now,
    )
    attempt.model, attempt.account, attempt.workdir = run.model, run.account, run.workdir
    attempt.handle = Handle.from_dict(handle_data) if handle_data else None
    files.log.unlink(missing_ok=True)  # re-rendered from the raw output
    return attempt


def ours(home: Path, task: Task) -> bool:
    """Whether a supervisor of this home started the attempt: its tokens are signed with the
    home's own key, which no import or copy of the store carries."""
    run = task.run
    if run is None:
        return False
    files = live_files(home, task.id, run.attempt)
    handle_data = run.handle or load_json(files.handle)
    tokens = {run.token}
    if isinstance(handle_data, dict):
        tokens.add(str(handle_data.get("token") or ""))
    return all(ownership.owns(home, t) for t in tokens)


DISOWNED = (
    "its run record was not made by a supervisor of this home (imported or copied), so fleet"
    " will not touch its processes; stop them yourself if any run, then `fleet retry`"
)


def adopted_op(attempt: Attempt, actor: str, pid: int) -> Op:
    def change(task: Task) -> bool:
        return lifecycle.adopt(task, attempt.n, actor, pid)

    return Op(attempt.task_id, "adopted", change)


def unrecorded(processes: Processes, attempt: Attempt, token: str) -> int | Ending:
    """An attempt whose agent's handle was never recorded: its supervisor died at the spawn.

    The agent may not exist, may still run (it is stopped: it cannot be watched without its
    handle), or may have ended already (its wrapper wrote the exit code: returned, to be
    recorded as any other end).
    """
    stopped = processes.sweep(token) if token else 0
    code = read_rc(attempt.files.rc)
    if code is not None:
        return code
    if stopped:
        return Ending(
            Outcome.KILLED, "the supervisor died as the agent started; the agent was stopped"
        )
    return Ending(Outcome.KILLED, "the supervisor died before the agent started")
