"""An ended attempt judged and recorded: its outcome (with its last stderr line), what a triage,
refinement or decomposing result means, its work committed, and the op that records it all."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor import planning
from supervisor.config import Config
from supervisor.lifecycle import Ending, Policy
from supervisor.model import Task
from supervisor.run import decompose, delivery, ending, triage
from supervisor.run.attempt import Attempt
from supervisor.run.ops import Op
from supervisor.run.stderr_tail import with_stderr
from supervisor.store.store import Store


@dataclass
class Judged:
    end: Ending
    task: Task | None  # the task as the attempt left it (its run record still on)
    fill: triage.Fill | None = None  # a triage or refinement attempt's changes to the task
    subtasks: list[planning.Subtask] | None = None  # a decomposing result's subtasks


def judge(store: Store, attempt: Attempt, code: int, config: Config) -> Judged:
    task = store.cache.get(attempt.task_id)
    stop = task.run.stop if attempt.stop.startswith("killed") and task and task.run else None
    end = with_stderr(ending.classify(attempt, code, stop), attempt.files.stderr)
    end, fill = triage.on_end(end, task, config)
    end, subtasks = decompose.on_end(end, task, store, config, fill)
    return Judged(end, task, fill, subtasks)


def record_op(
    store: Store,
    attempt: Attempt,
    judged: Judged,
    code: int,
    now: float,
    actor: str,
    config: Config,
    policy: Policy,
) -> Op:
    """The op that records the ended attempt on its task, with its files and its work."""
    end = judged.end
    summary = ending.record(attempt, end, code, now, actor, config.prices)
    summary.update(triage.record_fields(judged.task))
    delivered = delivery.on_end(store, attempt, end, summary)  # its work, its diff
    op = ending.end_op(attempt, end, summary, now, policy)
    op = delivery.hooked(op, attempt.n, summary, config, now, delivered)
    subtasks = judged.subtasks or []
    return decompose.planned(
        op, attempt.n, summary, judged.fill, subtasks, judged.task, config, now
    )
