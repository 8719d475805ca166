"""The task lifecycle: one row per line of docs/states.md, and the doc's tables read and checked
against the code."""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coders.base import Outcome
from supervisor import lifecycle
from supervisor.errors import BadInput
from supervisor.lifecycle import AgentResult, Ending, Policy
from supervisor.model import FLEET_STATUSES, Run, Stop, Task

ROOT = Path(__file__).resolve().parents[2]
STATES = ROOT / "docs" / "states.md"
NOW = 1_800_000_000.0
POLICY = Policy(max_attempts=3, backoff_seconds=10, backoff_max_seconds=100, rng=random.Random(1))
ME = "ann@desk"


def running(n: int = 1, **fields: Any) -> Task:
    task = Task("fl-a1", "work", status="in_progress", **fields)
    task.run = Run(n, actor="supervisor@h:1", host="h")
    task.attempts = [{"n": i, "outcome": "failure", "counted": False} for i in range(1, n)]
    return task


def end(task: Task, ending: Ending) -> dict[str, Any]:
    record: dict[str, Any] = {
        "n": task.run.attempt if task.run else 0,
        "outcome": ending.outcome.value,
    }
    assert lifecycle.end(task, record["n"], ending, record, NOW, POLICY)
    return task.attempts[-1]


def stop(then: str, reason: str = "") -> Ending:
    return lifecycle.stopped(Stop(ME, "", then, reason))


def done(status: str) -> AgentResult:
    return AgentResult(status, f"{status} summary")


# -- one row per line of the "Attempt outcomes" table ----------------------------------------------

# doc label -> (the ending, counts against max_attempts, the task's next status, its reason)
OUTCOMES: dict[str, tuple[Ending, bool, str, str]] = {
    "`success`": (Ending(Outcome.SUCCESS, "", done("done")), False, "closed", ""),
    "`success` + result `partial`": (
        Ending(Outcome.SUCCESS, "the agent did part of it", done("partial")),
        True,
        "open",
        "attempt 1 success: the agent did part of it; retry after ",
    ),
    "`success` + result `blocked`": (
        Ending(Outcome.SUCCESS, "", done("blocked")),
        False,
        "blocked",
        "the agent is blocked: blocked summary",
    ),
    "`failure`": (Ending(Outcome.FAILURE, "exit 1"), True, "open", "attempt 1 failure: exit 1;"),
    "`stalled`": (Ending(Outcome.STALLED, "no output"), True, "open", "attempt 1 stalled: "),
    "`timed_out`": (Ending(Outcome.TIMED_OUT, "too long"), True, "open", "attempt 1 timed_out: "),
    "`max_turns`": (Ending(Outcome.MAX_TURNS, "turns"), True, "open", "attempt 1 max_turns: "),
    "`auth_error`": (Ending(Outcome.AUTH_ERROR, "401"), True, "open", "attempt 1 auth_error: "),
    "`rate_limited`": (
        Ending(Outcome.RATE_LIMITED, "429", resets_at=NOW + 600),
        False,
        "open",
        "rate_limited: 429; waits until ",
    ),
    "`overloaded`": (Ending(Outcome.OVERLOADED, "529"), False, "open", "overloaded: 529; waits"),
    "`killed`": (stop("hold"), False, "blocked", f"held: stopped by {ME}"),
    "`over_budget`": (
        Ending(Outcome.OVER_BUDGET, "x", block_reason="budget: max_cost 1 (used 1.2)"),
        False,
        "blocked",
        "budget: max_cost 1 (used 1.2)",
    ),
    "`setup_error`": (
        Ending(Outcome.SETUP_ERROR, "no such coder"),
        False,
        "blocked",
        "setup error: no such coder",
    ),
}


@pytest.mark.parametrize("label", list(OUTCOMES))
def test_an_attempts_end_moves_its_task_as_the_table_says(label: str) -> None:
    ending, counted, status, why = OUTCOMES[label]
    task = running()
    record = end(task, ending)
    assert record["counted"] is counted
    assert task.status == status and task.run is None and task.assignee == ""
    assert task.status_reason.startswith(why), task.status_reason
    if status == "closed":
        assert task.close_reason == "done summary" and task.closed_at
    if label in ("`rate_limited`", "`overloaded`", "`failure`"):
        assert task.not_before, "it waits: a reset or a backoff"


@pytest.mark.parametrize(
    ("then", "reason", "status", "why", "close_reason"),
    [
        ("hold", "", "blocked", f"held: stopped by {ME}", ""),
        ("requeue", "", "open", f"killed by {ME}", ""),
        ("block", "wrong approach", "blocked", "wrong approach", ""),
        ("block", "", "blocked", f"blocked by {ME}", ""),
        ("cancel", "not needed", "closed", "", "cancelled: not needed"),
        ("cancel", "", "closed", "", "cancelled"),
    ],
)
def test_a_stopped_attempt_applies_what_the_stop_asked(
    then: str, reason: str, status: str, why: str, close_reason: str
) -> None:
    task = running()
    assert lifecycle.request_stop(task, ME, then, reason, NOW)
    assert task.run is not None and task.run.stop == Stop(ME, task.run.stop.at, then, reason)
    record = end(task, lifecycle.stopped(task.run.stop))
    assert (record["outcome"], record["counted"]) == ("killed", False)
    assert (task.status, task.status_reason, task.close_reason) == (status, why, close_reason)
    assert lifecycle.held(task) is (then == "hold")
    assert lifecycle.cancelled(task) is (then == "cancel")


def test_a_supervisor_that_stops_with_its_agents_requeues_them() -> None:
    task = running()
    end(task, lifecycle.stopped(None))
    assert (task.status, task.status_reason) == ("open", "stopped with the supervisor")


def test_attempts_used_up_block_the_task() -> None:
    task = running(3)
    for attempt in task.attempts:
        attempt["counted"] = True
    end(task, Ending(Outcome.FAILURE, "exit 1"))
    assert task.status == "blocked"
    assert task.status_reason == "failed 3 attempts; the last: failure: exit 1"
    task = running(2, max_attempts=5)  # the task's own limit wins
    task.attempts[0]["counted"] = True
    end(task, Ending(Outcome.FAILURE, "exit 1"))
    assert task.status == "open"


@pytest.mark.parametrize(
    "first",
    [
        Ending(Outcome.SUCCESS, "", done("blocked")),
        Ending(Outcome.OVER_BUDGET, "x", block_reason="budget: max_tokens 10 (used 11)"),
        Ending(Outcome.SETUP_ERROR, "cwd gone"),
    ],
)
def test_blocked_attempts_do_not_count_against_max_attempts(first: Ending) -> None:
    """max_attempts 2, an attempt that blocks, a reopen, one failure: one failure, not two."""
    task = running(max_attempts=2)
    end(task, first)
    assert task.status == "blocked"
    lifecycle.reopen(task, NOW)
    task.status, task.run = "in_progress", Run(2)
    end(task, Ending(Outcome.FAILURE, "exit 1"))
    assert task.status == "open", task.status_reason
    assert lifecycle.counted_failures(task) == 1


def test_a_rate_limit_with_another_account_free_moves_at_once() -> None:
    task = running()
    end(task, Ending(Outcome.RATE_LIMITED, "429", resets_at=NOW + 600, other_account="a"))
    assert task.status == "open" and task.not_before == ""
    assert task.status_reason == "rate_limited on account a: 429; moves to another account"
    pinned = running(account="a")  # pinned to its account: it waits for the reset
    end(pinned, Ending(Outcome.RATE_LIMITED, "429", resets_at=NOW + 600, other_account="a"))
    assert pinned.not_before and pinned.status_reason.startswith("rate_limited: 429; waits")


def test_an_attempt_that_no_longer_runs_changes_nothing() -> None:
    task = running(2)
    before = task.to_dict()
    assert not lifecycle.end(task, 1, Ending(Outcome.FAILURE), {"n": 1}, NOW, POLICY)
    assert not lifecycle.adopt(task, 1, "other", 2)
    assert not lifecycle.note(task, 1, lambda run: None)
    assert task.to_dict() == before


def test_the_claim_is_exactly_once() -> None:
    task = Task("fl-a1", "work")
    assert lifecycle.claim(task, Run(1, actor="s1"), NOW)
    assert (task.status, task.assignee, task.run and task.run.attempt) == ("in_progress", "s1", 1)
    assert not lifecycle.claim(task, Run(1, actor="s2"), NOW)
    assert task.assignee == "s1"


# -- one row per line of the "Who changes a status" table ------------------------------------------


def blocked(why: str = "failed 3 attempts; the last: failure: exit 1") -> Task:
    task = Task("fl-a1", "work", status="blocked", status_reason=why)
    task.attempts = [{"n": i, "outcome": "failure", "counted": True} for i in (1, 2, 3)]
    return task


def closed(reason: str = "all done") -> Task:
    return Task(
        "fl-a1", "work", status="closed", closed_at="2026-01-01T00:00:00Z", close_reason=reason
    )


PeopleRow = tuple[Callable[[], Task], Callable[[Task], object], str, str, int]
# doc command -> (the task before, the change, status after, its reason, attempts counted after)
PEOPLE: dict[str, PeopleRow] = {
    "`fleet kill ID`": (
        running,
        lambda t: (
            lifecycle.request_stop(t, ME, "hold", "", NOW),
            end(t, lifecycle.stopped(t.run.stop if t.run else None)),
        ),
        "blocked",
        f"held: stopped by {ME}",
        0,
    ),
    "`fleet kill ID --requeue`": (
        running,
        lambda t: (
            lifecycle.request_stop(t, ME, "requeue", "", NOW),
            end(t, lifecycle.stopped(t.run.stop if t.run else None)),
        ),
        "open",
        f"killed by {ME}",
        0,
    ),
    "`fleet kill ID --block REASON`": (
        running,
        lambda t: (
            lifecycle.request_stop(t, ME, "block", "REASON", NOW),
            end(t, lifecycle.stopped(t.run.stop if t.run else None)),
        ),
        "blocked",
        "REASON",
        0,
    ),
    "`fleet cancel ID [--reason R]`": (
        blocked,
        lambda t: lifecycle.cancel(t, "R", NOW),
        "closed",
        "",
        3,
    ),
    "`fleet resume ID`": (
        lambda: blocked(f"held: stopped by {ME}"),
        lambda t: lifecycle.resume(t, NOW),
        "open",
        "",
        3,
    ),
    "`fleet retry ID`": (blocked, lambda t: lifecycle.retry(t, NOW), "open", "", 0),
    "`fleet bd reopen ID`": (blocked, lambda t: lifecycle.reopen(t, NOW), "open", "", 3),
    "`fleet bd close ID`": (blocked, lambda t: lifecycle.close(t, "", NOW), "closed", "", 3),
    "`fleet bd update --status open\\|deferred`": (
        blocked,
        lambda t: lifecycle.set_status(t, "deferred", ME, "", NOW),
        "deferred",
        "",
        3,
    ),
    "`fleet bd update --status blocked [--reason R]`": (
        lambda: Task("fl-a1", "work"),
        lambda t: lifecycle.set_status(t, "blocked", ME, "", NOW),
        "blocked",
        f"blocked by {ME}",
        0,
    ),
    "`fleet bd update --status closed`": (
        blocked,
        lambda t: lifecycle.set_status(t, "closed", ME, "", NOW),
        "closed",
        "",
        3,
    ),
}


@pytest.mark.parametrize("command", list(PEOPLE))
def test_what_people_do_moves_the_task_as_the_table_says(command: str) -> None:
    before, change, status, why, counted = PEOPLE[command]
    task = before()
    change(task)
    assert (task.status, task.status_reason) == (status, why)
    assert lifecycle.counted_failures(task) == counted
    assert task.run is None


def test_a_blocked_reason_is_recorded_and_can_be_changed() -> None:
    task = Task("fl-a1", "work")
    lifecycle.set_status(task, "blocked", ME, "waits for the API key", NOW)
    assert task.status_reason == "waits for the API key"
    assert lifecycle.set_status(task, "blocked", ME, "still waiting", NOW)
    assert task.status_reason == "still waiting"


def test_people_may_not_claim_nor_change_a_running_task() -> None:
    with pytest.raises(BadInput, match="only a supervisor sets a task in_progress"):
        lifecycle.set_status(Task("fl-a1", "work"), "in_progress", ME, "", NOW)
    for change in (
        lambda t: lifecycle.close(t, "", NOW),
        lambda t: lifecycle.reopen(t, NOW),
        lambda t: lifecycle.retry(t, NOW),
        lambda t: lifecycle.cancel(t, "", NOW),
        lambda t: lifecycle.set_status(t, "open", ME, "", NOW),
    ):
        task = running()
        with pytest.raises(BadInput, match=r"is running \(attempt 1\)"):
            change(task)
        assert task.status == "in_progress"


def test_retry_of_a_done_task_needs_force_but_not_of_a_cancelled_one() -> None:
    task = closed()
    with pytest.raises(BadInput, match="is closed: all done") as caught:
        lifecycle.retry(task, NOW)
    assert caught.value.hint == "`fleet retry fl-a1 --force` runs it again anyway"
    assert task.status == "closed"
    assert lifecycle.retry(task, NOW, force=True) and task.status == "open"
    cancelled = closed("cancelled: not needed")
    assert lifecycle.retry(cancelled, NOW) and cancelled.status == "open"


def test_resume_takes_only_a_held_task() -> None:
    with pytest.raises(BadInput, match=r"is not held \(status blocked\)"):
        lifecycle.resume(blocked(), NOW)


def test_stopping_a_task_that_does_not_run_is_refused() -> None:
    with pytest.raises(BadInput, match=r"is not running \(status open\)"):
        lifecycle.request_stop(Task("fl-a1", "work"), ME, "hold", "", NOW)
    stuck = Task("fl-a1", "work", status="in_progress")  # set by hand by an earlier fleet
    with pytest.raises(BadInput) as caught:
        lifecycle.request_stop(stuck, ME, "hold", "", NOW)
    assert (
        caught.value.hint
        == "no attempt runs it: open it with `fleet bd update fl-a1 --status open`"
    )
    assert lifecycle.set_status(stuck, "open", ME, "", NOW) and stuck.status == "open"


# -- the doc's tables, read ------------------------------------------------------------------------


def table(heading: str) -> list[list[str]]:
    """The rows of the first table under `## heading` in docs/states.md, cells stripped."""
    text = STATES.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def test_the_status_table_names_fleets_statuses() -> None:
    assert [row[0].strip("`") for row in table("Task status")] == list(FLEET_STATUSES)


def test_the_outcome_table_is_the_code() -> None:
    rows = table("Attempt outcomes")
    assert [row[0] for row in rows] == list(OUTCOMES)
    assert {row[0].split()[0].strip("`") for row in rows} == {o.value for o in Outcome}
    for label, _when, counts, after in rows:
        ending, counted, status, _ = OUTCOMES[label]
        assert counts in ("yes", "no"), label
        assert lifecycle.counts(ending) is (counts == "yes") is counted, label
        task = running()
        end(task, ending)
        first = after.split()[0].strip("`,:;")
        expected = {"as": "open", "fleet": "blocked"}.get(first, first)  # "as failure"; kill
        assert task.status == expected == status, (label, after)


def test_the_who_table_is_the_code() -> None:
    rows = table("Who changes a status")
    assert [row[0] for row in rows] == list(PEOPLE)
    for command, _source, target, attempts in rows:
        _, _, status, _, _ = PEOPLE[command]
        assert target.split()[0].strip(",:;") in (status, "that"), command
        assert ("fresh" in attempts) is (command == "`fleet retry ID`"), command


# -- the only writer -------------------------------------------------------------------------------

OWNED = {"status", "status_reason", "not_before", "closed_at", "close_reason", "retry_base", "run"}


def test_only_the_lifecycle_writes_a_tasks_status() -> None:
    """No module but lifecycle (and the model, which builds tasks) assigns the status fields."""
    found = []
    for path in sorted((ROOT / "supervisor").rglob("*.py")):
        if path.name in ("lifecycle.py", "model.py", "graph.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = [t for target in node.targets for t in _flat(target)]
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in OWNED:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{target.attr}")
    assert found == []


def _flat(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple):
        return [t for elt in target.elts for t in _flat(elt)]
    return [target]
