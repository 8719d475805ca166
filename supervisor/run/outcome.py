"""What an attempt's end means for its task: the result contract and the retry rules."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coders.base import Outcome
from supervisor.model import Task, iso

RESULT_STATUSES = ("done", "partial", "blocked")
# Outcomes that are not the task's fault: retried without using up an attempt.
NOT_COUNTED = {Outcome.RATE_LIMITED, Outcome.OVERLOADED, Outcome.KILLED}


@dataclass
class AgentResult:
    status: str
    summary: str = ""
    open_questions: list[str] = field(default_factory=list)
    subtasks: object = None  # as the result lists them; `supervisor.planning` checks them
    data: dict[str, Any] = field(default_factory=dict)  # the whole result object


def read_result(path: Path) -> tuple[AgentResult | None, str]:
    """The result the agent wrote, or (None, why it is missing or invalid)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "the agent finished without writing its result file"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"the result file cannot be read: {exc}"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return None, f"the result file is not JSON: {exc}"
    if not isinstance(data, dict):
        return None, "the result file does not hold a JSON object"
    status = data.get("status")
    if status not in RESULT_STATUSES:
        return None, f"the result's status {status!r} is not one of {', '.join(RESULT_STATUSES)}"
    summary = data.get("summary", "")
    questions = data.get("open_questions", [])
    if not isinstance(summary, str):
        return None, "the result's summary is not a string"
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        return None, "the result's open_questions is not a list of strings"
    return AgentResult(status, summary, questions, data.get("subtasks"), data), ""


def backoff(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: base * 2^(failures-1), capped, times 0.5..1."""
    delay: float = min(cap, base * 2.0 ** max(0, failures - 1))
    return delay * rng.uniform(0.5, 1.0)


def counted_failures(task: Task) -> int:
    return sum(1 for a in task.attempts[task.retry_base :] if a.get("counted"))


@dataclass
class Ending:
    """An attempt's end, as the supervisor records it on the task."""

    outcome: Outcome
    reason: str = ""
    result: AgentResult | None = None
    resets_at: float | None = None
    block_reason: str = ""  # for KILLED / OVER_BUDGET / SETUP_ERROR: block the task with this


def apply(
    task: Task,
    ending: Ending,
    summary: dict[str, Any],
    now: float,
    max_attempts: int,
    base: float,
    cap: float,
    rng: random.Random,
) -> None:
    """Record the attempt on `task` and move it to its next status."""
    outcome = ending.outcome
    summary["counted"] = outcome not in NOT_COUNTED and not (
        outcome == Outcome.SUCCESS and ending.result is not None and ending.result.status == "done"
    )
    task.attempts.append(summary)
    task.run = None
    task.updated_at = iso(now)
    task.not_before = ""
    if outcome == Outcome.SUCCESS and (ending.result is None or ending.result.status == "done"):
        task.status, task.closed_at, task.assignee = "closed", iso(now), ""
        task.close_reason = (ending.result.summary if ending.result else "") or "done"
        task.status_reason = ""
        return
    if (
        outcome == Outcome.SUCCESS
        and ending.result is not None
        and ending.result.status == "blocked"
    ):
        _block(task, f"the agent is blocked: {ending.result.summary or 'no reason given'}")
        return
    if ending.block_reason or outcome == Outcome.SETUP_ERROR:
        _block(task, ending.block_reason or f"setup error: {ending.reason}")
        return
    task.status, task.assignee = "open", ""
    if outcome in NOT_COUNTED:
        if outcome == Outcome.KILLED:
            task.status_reason = ending.reason or "stopped"
            return
        streak = _streak(task, outcome)
        wait = (ending.resets_at - now) if ending.resets_at else backoff(streak, base, cap, rng)
        task.not_before = iso(now + max(wait, 0.0))
        task.status_reason = f"{outcome.value}: {ending.reason}; waits until {task.not_before}"
        return
    failures = counted_failures(task)
    if failures >= max_attempts:
        _block(task, f"failed {failures} attempts; the last: {outcome.value}: {ending.reason}")
        return
    task.not_before = iso(now + backoff(failures, base, cap, rng))
    task.status_reason = (
        f"attempt {summary['n']} {outcome.value}: {ending.reason}; retry after {task.not_before}"
    )


def _block(task: Task, reason: str) -> None:
    task.status, task.assignee, task.status_reason = "blocked", "", reason


def _streak(task: Task, outcome: Outcome) -> int:
    count = 0
    for attempt in reversed(task.attempts):
        if attempt.get("outcome") != outcome.value:
            break
        count += 1
    return count
