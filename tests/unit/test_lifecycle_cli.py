"""The lifecycle through the CLI: `bd update --status`, `cancel`, `retry --force`, `resume ID`;
and a task written by an earlier fleet read by this one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

from supervisor import lifecycle
from supervisor.model import Run, Stop, Task
from supervisor.store.store import Change, Snapshot, Store
from tests.support.store_checks import git, head, tree_tasks

Fleet = Any
DATA = Path(__file__).resolve().parents[1] / "data"


def ok(fleet: Fleet, *args: str) -> Result:
    result: Result = fleet(*args)
    assert result.code == 0, f"fleet {' '.join(args)}: {result.err}"
    return result


def make(fleet: Fleet, *args: str) -> str:
    return ok(fleet, "bd", "create", "work", *args).out.strip()


def refused(fleet: Fleet, home: Path, *args: str) -> Result:
    """The command fails with exit 2, one `fleet:` line and a hint, and the store is unchanged."""
    before = head(home)
    result: Result = fleet(*args)
    assert result.code == 2, (result.out, result.err)
    lines = result.err.splitlines()
    assert lines[0].startswith("fleet: ") and lines[1].lstrip().startswith("hint: "), result.err
    assert head(home) == before
    return result


def put(store: Store, task: Task) -> None:
    def build(snap: Snapshot) -> tuple[Change, None]:
        change = Change(f"test {task.id}", "updated")
        change.put(task)
        return change, None

    store.mutate(build)


def test_update_status_in_progress_is_refused(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    result = refused(fleet, home, "bd", "update", task_id, "--status", "in_progress")
    assert "only a supervisor sets a task in_progress" in result.err
    assert tree_tasks(home)[task_id]["status"] == "open"


def test_update_status_blocked_records_a_reason(fleet: Fleet, home: Path) -> None:
    first, second = make(fleet), make(fleet)
    ok(fleet, "bd", "update", first, "--status", "blocked", "--reason", "needs the API key")
    assert tree_tasks(home)[first]["status_reason"] == "needs the API key"
    ok(fleet, "bd", "update", second, "--status", "blocked")
    assert tree_tasks(home)[second]["status_reason"].startswith("blocked by ")
    result = refused(fleet, home, "bd", "update", second, "--reason", "why")
    assert "--reason goes with --status blocked" in result.err


def test_update_status_closed_clears_a_stale_blocked_reason(
    fleet: Fleet, home: Path, store: Store
) -> None:
    task_id = make(fleet)
    task = store.get(task_id)
    task.status, task.status_reason = "blocked", "failed 3 attempts; the last: failure: exit 1"
    put(store, task)
    ok(fleet, "bd", "update", task_id, "--status", "closed")
    stored = tree_tasks(home)[task_id]
    assert stored["status"] == "closed" and "status_reason" not in stored


def test_cancel_closes_a_task_as_not_done_in_one_commit(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    before = head(home)
    out = json.loads(ok(fleet, "cancel", task_id, "--reason", "not needed", "--json").out)
    assert out["status"] == "closed" and out["close_reason"] == "cancelled: not needed"
    assert out["message"] == f"cancelled {task_id}; closed: cancelled: not needed"
    stored = tree_tasks(home)[task_id]
    assert (stored["status"], stored["close_reason"]) == ("closed", "cancelled: not needed")
    assert len(git(home, "rev-list", f"{before}..refs/heads/main").split()) == 1
    result = refused(fleet, home, "cancel", task_id)
    assert "is closed already" in result.err


def test_retry_of_a_done_task_needs_force(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    ok(fleet, "bd", "close", task_id, "--reason", "shipped")
    result = refused(fleet, home, "retry", task_id)
    assert f"`fleet retry {task_id} --force`" in result.err
    out = json.loads(ok(fleet, "retry", task_id, "--force", "--json").out)
    assert out["status"] == "open" and out["id"] == task_id
    cancelled = make(fleet)
    ok(fleet, "cancel", cancelled)
    assert ok(fleet, "retry", cancelled).out == f"{cancelled} is open again\n"


def test_resume_id_releases_a_held_task_and_refuses_others(
    fleet: Fleet, home: Path, store: Store
) -> None:
    task_id = make(fleet)
    result = refused(fleet, home, "resume", task_id)
    assert "is not held" in result.err
    task = store.get(task_id)
    task.status, task.status_reason = "blocked", "held: stopped by ann@box"
    put(store, task)
    assert ok(fleet, "resume", task_id).out == f"{task_id} is open again\n"
    assert tree_tasks(home)[task_id]["status"] == "open"


def test_kill_of_a_task_that_does_not_run_is_refused(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    result = refused(fleet, home, "kill", task_id)
    assert f"task {task_id} is not running (status open)" in result.err
    result = refused(fleet, home, "kill", task_id, "--requeue", "--block", "x")
    assert "contradict" in result.err


# -- a store written by an earlier fleet ---------------------------------------------------------


def test_a_running_task_written_by_an_earlier_fleet_reads_and_writes_back() -> None:
    raw = json.loads((DATA / "task-running-earlier.json").read_text())
    task = Task.from_dict(raw)
    run = task.run
    assert run is not None
    assert (run.attempt, run.actor, run.host, run.supervisor_pid) == (
        2,
        raw["assignee"],
        "box",
        4242,
    )
    assert run.token == raw["run"]["token"] and run.handle == raw["run"]["handle"]
    assert run.lines == 12 and run.budget_warning.startswith("80%")
    # the earlier stop request had no `then`: a `block` reason means block
    assert run.stop == Stop("ann@box", "2026-11-30T09:00:10.000000Z", "block", "wrong approach")
    assert lifecycle.stopped(run.stop).block_reason == "wrong approach"
    written = task.to_dict()["run"]
    # every value an earlier fleet reads is where it looks for it
    for key, value in raw["run"].items():
        if value not in ("", None, 0) and key != "stop":
            assert written[key] == value, key
    assert written["stop"]["block"] == "wrong approach" and written["stop"]["by"] == "ann@box"
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task


def test_an_earlier_stop_without_a_reason_requeues() -> None:
    stop = Stop.from_dict({"by": "ann@box", "block": "", "at": "2026-11-30T09:00:10Z"})
    assert stop.then == "requeue"
    assert lifecycle.stopped(stop).block_reason == ""


@pytest.mark.parametrize("then", ["hold", "block", "cancel"])
def test_an_earlier_supervisor_blocks_a_task_this_one_asks_to_hold_block_or_cancel(
    then: str,
) -> None:
    """An earlier supervisor reads only `block`: it must not put the task back to run."""
    written = Stop("ann@box", "t", then, "why").to_dict()
    assert written["block"], written


def test_a_run_record_keeps_fields_it_does_not_know() -> None:
    run = Run.from_dict({"attempt": 3, "later_field": {"x": 1}})
    assert run.extra == {"later_field": {"x": 1}}
    assert run.to_dict() == {"attempt": 3, "later_field": {"x": 1}}
