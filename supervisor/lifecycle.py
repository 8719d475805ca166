"""The task lifecycle: every change of a task's status, in one place.

This module is the only writer of `Task.status` and of the fields that go with it
(`status_reason`, `not_before`, `closed_at`, `close_reason`, the attempt records, `retry_base`
and the `run` record's claim and stop). Each function takes a task as read from the store,
changes it (or raises BadInput saying why it may not), and returns whether anything changed; the
caller commits it. docs/states.md is the table of these rules; tests/unit/test_lifecycle.py
checks the table against this module.

Pure: no I/O, no clock (`now` is passed in), no layer imported. `fleet bd` commands import it, so
it stays as cheap to import as the model: no `dataclasses`, no `random` and no `coders` (an
outcome is a `coders.base.Outcome`, a `str`: it is compared with its value here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisor.errors import BadInput
from supervisor.model import FLEET_STATUSES, Record, Run, Stop, Task, iso

if TYPE_CHECKING:
    import random

    from coders.base import Outcome

RESULT_STATUSES = ("done", "partial", "blocked")
# Outcomes that are not the task's fault: retried without using up an attempt.
NOT_COUNTED = frozenset({"rate_limited", "overloaded", "killed"})
# Outcomes that block the task at once: they do not use up an attempt either.
BLOCKING = frozenset({"over_budget", "setup_error"})
STOP_THEN = ("hold", "requeue", "block", "cancel")
HELD = "held: "  # how a held task's status_reason begins
CANCELLED = "cancelled"  # how a cancelled task's close_reason begins
SET_BY_PEOPLE = ("open", "blocked", "deferred", "closed")  # `bd update --status` may set these


class AgentResult(Record):
    """What the agent wrote in its result file."""

    def __init__(
        self,
        status: str,
        summary: str = "",
        open_questions: list[str] | None = None,
        subtasks: object = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.summary = summary
        self.open_questions: list[str] = [] if open_questions is None else open_questions
        self.subtasks = subtasks  # as the result lists them; `supervisor.planning` checks them
        self.data: dict[str, Any] = {} if data is None else data  # the whole result object


class Ending(Record):
    """An attempt's end, as the supervisor records it on the task."""

    def __init__(
        self,
        outcome: Outcome,
        reason: str = "",
        result: AgentResult | None = None,
        resets_at: float | None = None,
        block_reason: str = "",
        cancel: bool = False,
        other_account: str = "",
    ) -> None:
        self.outcome = outcome
        self.reason = reason
        self.result = result
        self.resets_at = resets_at
        self.block_reason = block_reason  # KILLED / OVER_BUDGET / SETUP_ERROR: block with this
        self.cancel = cancel  # KILLED by `fleet cancel`: close the task as not done
        self.other_account = other_account  # RATE_LIMITED, another account free: no wait


class Policy(Record):
    """The retry rules of the configuration."""

    def __init__(
        self,
        max_attempts: int = 3,
        backoff_seconds: float = 0.0,
        backoff_max_seconds: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.rng = rng

    def delay(self, failures: int) -> float:
        """The backoff before the next try, after `failures` in a row."""
        if self.rng is None:
            import random

            self.rng = random.Random()
        return backoff(failures, self.backoff_seconds, self.backoff_max_seconds, self.rng)


# -- reading ---------------------------------------------------------------------------------------


WAITING_FOR_SUBTASKS = "waiting for its subtasks"


def current(task: Task, n: int) -> Run | None:
    """The task's run record if attempt n is the one running, else None (it ended, or another
    attempt runs now): every change an attempt makes to its task is guarded by this."""
    run = task.run
    return run if run is not None and run.attempt == n else None


def counts(ending: Ending) -> bool:
    """Does this end use up one of the task's `max_attempts`?"""
    if ending.outcome in NOT_COUNTED or ending.outcome in BLOCKING or ending.block_reason:
        return False
    if ending.outcome == "success":
        return ending.result is not None and ending.result.status == "partial"
    return True


def counted_failures(task: Task) -> int:
    return sum(1 for a in task.attempts[task.retry_base :] if a.get("counted"))


def held(task: Task) -> bool:
    return task.status == "blocked" and task.status_reason.startswith(HELD)


def cancelled(task: Task) -> bool:
    return task.status == "closed" and task.close_reason.startswith(CANCELLED)


def backoff(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: base * 2^(failures-1), capped, times 0.5..1."""
    delay: float = min(cap, base * 2.0 ** max(0, failures - 1))
    return delay * rng.uniform(0.5, 1.0)


# -- the supervisor's transitions ------------------------------------------------------------------


def claim(task: Task, run: Run, now: float) -> bool:
    """open -> in_progress for the supervisor named in `run`: the exactly-once claim."""
    if task.status != "open" or task.run is not None:
        return False  # someone else has it, or it changed: not ours
    task.status, task.assignee, task.run = "in_progress", run.actor, run
    task.status_reason, task.updated_at = "", iso(now)
    return True


def next_attempt(task: Task) -> int:
    return len(task.attempts) + 1


def adopt(task: Task, n: int, actor: str, pid: int) -> bool:
    """Another supervisor of this host takes over attempt n (its own died)."""
    run = current(task, n)
    if run is None:
        return False
    run.actor, run.supervisor_pid, task.assignee = actor, pid, actor
    return True


def note(task: Task, n: int, change: Callable[[Run], None]) -> bool:
    """Change attempt n's run record (its live figures); False if n no longer runs."""
    run = current(task, n)
    if run is None:
        return False
    change(run)
    return True


def end(
    task: Task, n: int, ending: Ending, record: dict[str, Any], now: float, policy: Policy
) -> bool:
    """Record attempt n's end on the task and move the task to its next status."""
    if current(task, n) is None:
        return False
    outcome = ending.outcome
    record["counted"] = counts(ending)
    task.attempts.append(record)
    task.run = None
    task.updated_at = iso(now)
    task.not_before = ""
    task.assignee = ""
    result = ending.result
    if outcome == "success" and (result is None or result.status == "done"):
        _close(task, (result.summary if result else "") or "done", now)
    elif outcome == "success" and result is not None and result.status == "blocked":
        _block(task, f"the agent is blocked: {result.summary or 'no reason given'}")
    elif ending.cancel:
        _close(task, ending.block_reason or CANCELLED, now)
    elif ending.block_reason or outcome == "setup_error":
        _block(task, ending.block_reason or f"setup error: {ending.reason}")
    elif outcome == "killed":
        _open(task, ending.reason or "stopped")
    elif outcome in NOT_COUNTED:
        _wait(task, ending, now, policy)
    else:
        _failed(task, ending, record, now, policy)
    return True


def _wait(task: Task, ending: Ending, now: float, policy: Policy) -> None:
    """Rate-limited or overloaded: open again after the reset (or a backoff), or at once on
    another account when the limit was the account's and another can take the task."""
    if ending.outcome == "rate_limited" and ending.other_account and not task.account:
        _open(
            task,
            f"rate_limited on account {ending.other_account}: {ending.reason};"
            " moves to another account",
        )
        return
    if ending.resets_at:
        wait = ending.resets_at - now
    else:
        wait = policy.delay(_streak(task, ending.outcome))
    task.not_before = iso(now + max(wait, 0.0))
    _open(task, f"{ending.outcome.value}: {ending.reason}; waits until {task.not_before}")


def _failed(task: Task, ending: Ending, record: dict[str, Any], now: float, policy: Policy) -> None:
    failures = counted_failures(task)
    limit = task.max_attempts or policy.max_attempts
    what = f"{ending.outcome.value}: {ending.reason}"
    if failures >= limit:
        _block(task, f"failed {failures} attempts; the last: {what}")
        return
    task.not_before = iso(now + policy.delay(failures))
    _open(task, f"attempt {record['n']} {what}; retry after {task.not_before}")


def prepared(task: Task, n: int, record: dict[str, Any], reason: str, now: float) -> bool:
    """A triage or refinement attempt n did its job: recorded, not counted, and the task goes
    back to the queue for the work itself."""
    if current(task, n) is None:
        return False
    record["counted"] = False
    task.attempts.append(record)
    task.run, task.not_before, task.updated_at = None, "", iso(now)
    _open(task, reason)
    return True


def wait_for_subtasks(task: Task, ids: list[str], after: str) -> None:
    """The task's attempt created subtasks: it waits for them, blocked with the reason, until
    they all close (`settle_subtasks`)."""
    task.subtasks = [*task.subtasks, *ids]
    task.waiting_on_subtasks = True
    task.after_children = task.after_children or after
    task.closed_at, task.close_reason = "", ""
    _block(task, f"{WAITING_FOR_SUBTASKS}: {', '.join(ids)}")


def settle_subtasks(task: Task, statuses: dict[str, str], now: float) -> bool:
    """Once every subtask of a waiting task is closed, close it or reopen it to integrate their
    work (`after_children`); until then, name the ones it waits for. True when it changed."""
    if not task.waiting_on_subtasks or task.status != "blocked":
        return False
    pending = [c for c in task.subtasks if statuses.get(c, "closed") != "closed"]
    if pending:
        stuck = [f"{c} ({statuses[c]})" for c in pending if statuses.get(c) == "blocked"]
        reason = f"{WAITING_FOR_SUBTASKS}: {', '.join(stuck or pending)}"
        if reason == task.status_reason:
            return False
        task.status_reason = reason
        return True
    task.waiting_on_subtasks = False
    task.updated_at = iso(now)
    count = len(task.subtasks)
    if task.after_children == "integrate":
        _open(task, f"integrating its {count} subtasks")
    else:
        _close(task, f"its {count} subtasks closed", now)
    return True


def rework(task: Task, why: str, now: float) -> None:
    """A closed task's work goes back to its author (a review asked for changes, a person
    rejected it): open again, on the same branch, with `why`."""
    task.closed_at, task.close_reason, task.not_before, task.updated_at = "", "", "", iso(now)
    _open(task, why)


def hold_for(task: Task, reason: str, now: float) -> bool:
    """Block a task that does not run now with `reason` (a rule, a loop guard, a gate): a person
    acts next. A running task is left for its attempt to end (False)."""
    if task.run is not None:
        return False
    _block(task, reason)
    task.updated_at = iso(now)
    return True


def imported(task: Task, old: Task | None) -> None:
    """A task as an import may bring it: no run record but the store's own (only a supervisor
    writes one), and `in_progress` without one is open."""
    task.run = None if old is None else old.run
    if task.status == "in_progress" and (old is None or old.status != "in_progress"):
        task.status, task.assignee = "open", ""


def defer_imported(task: Task, reason: str, old: Task | None = None) -> None:
    """An imported task whose command this store has not seen waits for the user's consent
    (deferred, with `reason`); with `old`, it keeps the deferral it already has."""
    if old is not None:
        task.status, task.status_reason = old.status, old.status_reason
    else:
        task.status, task.status_reason = "deferred", reason


def delivery_move(task: Task, status: str, reason: str, now: float) -> None:
    """A closed task whose work could not be delivered (a conflict, a red check) goes back to
    work (`open`) or waits for a person (`blocked`); so does an agent that ended without its
    result (resumed, or waiting for a person)."""
    if status not in ("open", "blocked"):
        raise ValueError(f"delivery moves a task to open or blocked, not {status!r}")
    task.updated_at, task.closed_at, task.close_reason = iso(now), "", ""
    if status == "open":
        task.not_before = ""
        _open(task, reason)
    else:
        _block(task, reason)


def without_result(
    task: Task, n: int, record: dict[str, Any], status: str, reason: str, now: float
) -> bool:
    """Attempt n ended cleanly without its result file: recorded, not counted, and the task
    opened to resume the session once, or blocked for a person (`status`, with `reason`)."""
    if current(task, n) is None:
        return False
    record["counted"] = False
    task.attempts.append(record)
    task.run = None
    delivery_move(task, status, reason, now)
    return True


# -- people's transitions --------------------------------------------------------------------------


def request_stop(task: Task, by: str, then: str, reason: str, now: float) -> bool:
    """Ask the supervisor to stop the running attempt; the attempt's end applies `then`."""
    if then not in STOP_THEN:
        raise ValueError(f"unknown stop {then!r}")
    _refuse_unless_running(task)
    assert task.run is not None
    task.run.stop = Stop(by, iso(now), then, reason)
    return True


def stopped(stop: Stop | None) -> Ending:
    """How an attempt stopped on request ends (None: the supervisor stopped it)."""
    from coders.base import Outcome

    if stop is None:
        return Ending(Outcome.KILLED, "stopped with the supervisor")
    why = f"killed by {stop.by}"
    if stop.then == "hold":
        return Ending(Outcome.KILLED, why, block_reason=f"{HELD}stopped by {stop.by}")
    if stop.then == "block":
        return Ending(Outcome.KILLED, why, block_reason=stop.reason or f"blocked by {stop.by}")
    if stop.then == "cancel":
        return Ending(Outcome.KILLED, why, block_reason=_cancel_reason(stop.reason), cancel=True)
    return Ending(Outcome.KILLED, why)


def close(task: Task, reason: str, now: float) -> bool:
    """`bd close`: done (a task that runs is refused: stop it first)."""
    _refuse_if_running(task)
    if task.status == "closed":
        return False
    _close(task, reason, now)
    return True


def cancel(task: Task, reason: str, now: float) -> bool:
    """`fleet cancel` of a task that does not run: closed as not done."""
    _refuse_if_running(task)
    if task.status == "closed":
        raise BadInput(
            f"task {task.id} is closed already ({task.close_reason or 'done'})",
            hint=f"`fleet retry {task.id} --force` to run it again",
        )
    _close(task, _cancel_reason(reason), now)
    return True


def reopen(task: Task, now: float) -> bool:
    """`bd reopen`: open again, keeping its attempts (those used still count)."""
    _refuse_if_running(task)
    if task.status == "open":
        return False
    _open(task, "")
    task.updated_at = iso(now)
    return True


def retry(task: Task, now: float, force: bool = False) -> bool:
    """`fleet retry`: open again, now, with a fresh set of attempts."""
    _refuse_if_running(task)
    if task.status == "closed" and not cancelled(task) and not force:
        raise BadInput(
            f"task {task.id} is closed: {task.close_reason or 'done'}",
            hint=f"`fleet retry {task.id} --force` runs it again anyway",
        )
    _open(task, "")
    task.retry_base = len(task.attempts)
    task.updated_at = iso(now)
    return True


def resume(task: Task, now: float) -> bool:
    """`fleet resume ID`: a held task (stopped by `fleet kill`) opens again, its attempts kept."""
    if not held(task):
        raise BadInput(
            f"task {task.id} is not held (status {task.status})",
            hint=f"`fleet retry {task.id}` opens a blocked or closed task again",
        )
    _open(task, "")
    task.updated_at = iso(now)
    return True


def set_status(task: Task, status: str, actor: str, reason: str, now: float) -> bool:
    """`bd update --status`: a person sets open, blocked, deferred or closed by hand."""
    check_status(status)
    if status == task.status and not (status == "blocked" and reason):
        return False
    _refuse_if_running(task)
    if status == "closed":
        _close(task, task.close_reason if task.status == "closed" else reason, now)
    elif status == "blocked":
        _block(task, reason or f"blocked by {actor}")
        task.closed_at = task.close_reason = ""
    else:
        _open(task, "")
        task.status = status
    task.updated_at = iso(now)
    return True


def check_status(status: str) -> None:
    """Refuse a status a person may not set (BadInput saying which ones they may)."""
    if status not in FLEET_STATUSES:
        raise BadInput(
            f"status {status!r} is not valid", hint=f"use one of {', '.join(SET_BY_PEOPLE)}"
        )
    if status == "in_progress":
        raise BadInput(
            "only a supervisor sets a task in_progress (it claims the task and starts its agent)",
            hint="leave it open: a running supervisor claims it (`fleet supervisor start`)",
        )


# -- the moves themselves -------------------------------------------------------------------------


def _close(task: Task, reason: str, now: float) -> None:
    task.status, task.closed_at, task.close_reason = "closed", iso(now), reason
    task.status_reason, task.not_before, task.assignee = "", "", ""


def _open(task: Task, why: str) -> None:
    task.status, task.closed_at, task.close_reason = "open", "", ""
    task.status_reason, task.assignee = why, ""
    if not why:
        task.not_before = ""


def _block(task: Task, reason: str) -> None:
    task.status, task.assignee, task.status_reason, task.not_before = "blocked", "", reason, ""


def _cancel_reason(reason: str) -> str:
    return f"{CANCELLED}: {reason}" if reason else CANCELLED


def _refuse_unless_running(task: Task) -> None:
    if task.run is None or task.status != "in_progress":
        hint = f"see it with `fleet bd show {task.id}`"
        if task.status == "in_progress":  # set by hand by an earlier fleet: nothing runs it
            hint = f"no attempt runs it: open it with `fleet bd update {task.id} --status open`"
        raise BadInput(f"task {task.id} is not running (status {task.status})", hint=hint)


def _refuse_if_running(task: Task) -> None:
    if task.run is not None:
        raise BadInput(
            f"task {task.id} is running (attempt {task.run.attempt})",
            hint=f"stop it first with `fleet kill {task.id}`",
        )


def _streak(task: Task, outcome: str) -> int:
    count = 0
    for attempt in reversed(task.attempts):
        if attempt.get("outcome") != outcome:
            break
        count += 1
    return count


def describe(task: Task) -> str:
    """The task's status and why, in a few words (for messages)."""
    why = task.status_reason or (task.close_reason if task.status == "closed" else "")
    return f"{task.status}: {why}" if why else task.status
