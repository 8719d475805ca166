"""Stopping work with no supervisor running: `fleet kill` and `fleet cancel` stop the agent
themselves through the process seam and record the attempt; the daemon's loop runs its agents
through the seam it is given."""

from __future__ import annotations

import json

import pytest

from supervisor import lifecycle
from supervisor.model import Task
from supervisor.run import control
from supervisor.run import daemon as service
from supervisor.run.attempt import live_dir
from supervisor.run.ops import Op, commit
from supervisor.store.paths import run_file
from tests.support.rig import T0, Rig


@pytest.mark.parametrize(
    ("then", "status", "message"),
    [
        (
            "hold",
            "blocked",
            "stopped {id} (attempt 1); held until `fleet retry {id}` or `fleet resume {id}`",
        ),
        ("requeue", "open", "stopped {id} (attempt 1); requeued: it is open"),
    ],
)
def test_kill_with_no_supervisor_stops_the_agent_through_the_seam(
    rig: Rig, then: str, status: str, message: str
) -> None:
    task_id = rig.task("runaway")
    rig.tick(T0)
    run = rig.run_of(task_id)
    run.stdout.write_text("working\n")
    assert service.running(rig.store) is None  # the rig's supervisor holds no lock: "dead"
    stopped = control.kill(rig.store, task_id, then, processes=rig.fake, timeout=5)
    assert rig.fake.terminated == [(run.handle, 7.0)]
    assert rig.fake.swept == [], "a recorded handle is stopped, not swept"
    assert stopped.message() == message.format(id=task_id)
    task = rig.get(task_id)
    assert task.status == status and task.run is None
    record = task.attempts[-1]
    assert (record["n"], record["outcome"], record["counted"]) == (1, "killed", False)
    assert record["reason"].startswith("killed by ")
    committed = json.loads(rig.store.read(run_file(task_id, 1, "attempt.json")) or b"{}")
    assert committed["outcome"] == "killed"
    assert rig.store.read(run_file(task_id, 1, "output.log")) == b"working\n"
    assert not live_dir(rig.store.home, task_id).exists()


def test_cancel_of_a_running_task_stops_it_and_closes_it(rig: Rig) -> None:
    task_id = rig.task("not wanted")
    rig.tick(T0)
    stopped = control.cancel(rig.store, task_id, "superseded", processes=rig.fake)
    task = rig.get(task_id)
    assert (task.status, task.close_reason) == ("closed", "cancelled: superseded")
    assert lifecycle.cancelled(task)
    assert (
        stopped.message()
        == f"stopped {task_id} (attempt 1); cancelled: closed: cancelled: superseded"
    )
    assert rig.tick(T0 + 100).claimed == []


def test_kill_of_an_agent_whose_handle_was_never_recorded_sweeps_its_token(rig: Rig) -> None:
    task_id = rig.task("orphan")
    rig.tick(T0)
    run = rig.run_of(task_id)

    def forget(task: Task) -> bool:  # as if its supervisor died before recording the spawn
        return lifecycle.note(task, 1, lambda record: setattr(record, "handle", None))

    commit(rig.store, "test", [Op(task_id, "forget", forget)])
    (live_dir(rig.store.home, task_id) / "1" / "handle.json").unlink()
    stopped = control.kill(rig.store, task_id, processes=rig.fake, timeout=5)
    assert rig.fake.swept == [run.handle.token] and run.exit_code is not None
    assert stopped.task.status == "blocked" and lifecycle.held(stopped.task)
    assert stopped.record is not None and stopped.record["outcome"] == "killed"


def test_the_daemon_loop_runs_agents_through_the_seam_it_is_given(rig: Rig) -> None:
    task_id = rig.task("one")
    service.Loop(rig.store, processes=rig.fake).run(once=True)
    assert [r.env["FLEET_TASK_ID"] for r in rig.fake.runs] == [task_id]
