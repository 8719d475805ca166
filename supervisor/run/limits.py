"""Why a running attempt must stop now, if it must: a stop asked for (by a person, or with the
supervisor), its run time, its silence, its retries alone, its task's budgets."""

from __future__ import annotations

from supervisor import budgets
from supervisor.config import Config
from supervisor.model import Task
from supervisor.run import ending
from supervisor.run.attempt import Attempt
from supervisor.run.ops import Op


def check(
    config: Config, attempt: Attempt, task: Task | None, stop_all: bool, now: float
) -> tuple[str, list[Op]]:
    """(why it stops, "" when it runs on; the budget warnings to record)."""
    limits = budgets.task_limits(config, task, attempt.coder.name)
    idle_since = max(attempt.last_output_at, attempt.started_at)
    started, retries = attempt.started_at, attempt.retry_text
    reason = budgets.overrun(config, limits, started, idle_since, now, retries)
    if (task is not None and task.run is not None and task.run.stop) or stop_all:
        return "killed", []
    if reason or task is None:
        return reason, []
    running = (now - attempt.started_at, attempt.usage)
    reason, warnings = budgets.check(
        task, limits, running, config.prices, config.budget_warning, attempt.warned
    )
    return reason, [ending.warning_op(attempt, name, used) for name, used in warnings]
