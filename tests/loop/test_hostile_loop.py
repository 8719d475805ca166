"""The supervisor loop against broken configuration, foreign run records and retry loops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.errors import BadInput
from supervisor.model import Run, iso
from supervisor.run import ownership
from supervisor.store.store import Change, Snapshot
from tests.support.rig import HOST, T0, Rig, supervisor

RECONNECT = '{"type":"error","message":"Reconnecting... waiting for network"}'


def break_config(rig: Rig, text: bytes) -> None:
    rig.store.mutate(
        lambda snap: (Change("break", "config_changed", files={"config.toml": text}), None)
    )


def waiting(rig: Rig) -> dict[str, str]:
    data: dict[str, str] = json.loads((rig.store.home / "live" / "waiting.json").read_text())
    return data


def test_a_broken_config_claims_nothing_and_says_why(rig: Rig) -> None:
    task_id = rig.task("wants to run")
    break_config(rig, b'coder = "shell"\nisolation = "none"\nmax_concurrent = "lots"\n')
    report = rig.tick(T0)
    assert report.claimed == [] and rig.fake.runs == []
    assert "max_concurrent" in rig.sup.config_error
    assert "config.toml is not valid" in waiting(rig)[task_id]
    break_config(rig, b'coder = "shell"\nisolation = "none"\nmax_concurrent = \xff\n')
    assert rig.tick(T0 + 1).claimed == []
    assert "not UTF-8" in waiting(rig)[task_id]
    with pytest.raises(BadInput, match="config edit"):  # it does not parse: edit it whole
        rig.configure("max_concurrent=2")
    assert rig.tick(T0 + 2).claimed == []


def test_a_repaired_config_claims_again(rig: Rig) -> None:
    task_id = rig.task("wants to run")
    break_config(rig, b'coder = "shell"\nisolation = "none"\nmax_concurrent = "lots"\n')
    assert rig.tick(T0).claimed == []
    rig.configure("max_concurrent=1")
    assert rig.tick(T0 + 1).claimed == [task_id]
    assert rig.sup.config_error == ""


def test_a_broken_config_keeps_paused_rather_than_the_defaults(rig: Rig) -> None:
    rig.configure("paused=true")
    rig.task("must wait")
    break_config(rig, b'paused = true\ncoder = "shell"\nmax_attempts = 0\n')
    assert rig.tick(T0).claimed == []


def plant_run(rig: Rig, task_id: str, token: str, pid: int, created: float) -> None:
    """A run record as a copied store or an old import would carry it."""
    run = {
        "attempt": 1,
        "actor": f"supervisor@{HOST}:1",
        "host": HOST,
        "supervisor_pid": 1,
        "coder": "shell",
        "started_at": iso(T0),
        "token": token,
        "handle": {"pid": pid, "create_time": created, "token": token, "rc_path": "/nonexistent"},
    }

    def build(snap: Snapshot) -> tuple[Change, None]:
        task = snap.need(task_id)
        task.status, task.run = "in_progress", Run.from_dict(run)
        change = Change("plant", "claimed")
        change.put(task)
        return change, None

    rig.store.mutate(build)


def test_a_run_record_this_home_did_not_sign_is_never_adopted(rig: Rig) -> None:
    task_id = rig.task("copied")
    plant_run(rig, task_id, "ab" * 24, 4243, 4243.0)
    rig.fake.runs.clear()
    rig.tick(T0)
    assert rig.fake.terminated == [] and rig.fake.swept == []
    task = rig.get(task_id)
    assert task.status == "blocked" and task.run is None
    assert "not made by a supervisor of this home" in task.attempts[-1]["reason"]


def test_a_run_record_without_a_host_does_not_stay_in_progress_forever(rig: Rig) -> None:
    task_id = rig.task("no host")
    plant_run(rig, task_id, "cd" * 24, 4243, 4243.0)
    rig.store.mutate(lambda snap: _without_host(snap, task_id))
    rig.tick(T0)
    assert rig.fake.terminated == [] and rig.get(task_id).status == "blocked"


def _without_host(snap: Snapshot, task_id: str) -> tuple[Change, None]:
    task = snap.need(task_id)
    assert task.run is not None
    task.run = Run.from_dict({k: v for k, v in task.run.to_dict().items() if k != "host"})
    change = Change("no host", "updated")
    change.put(task)
    return change, None


def test_a_run_record_signed_by_another_home_is_never_adopted(rig: Rig, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    other.mkdir()
    foreign = ownership.new_token(other)
    assert ownership.owns(other, foreign) and not ownership.owns(rig.store.home, foreign)
    task_id = rig.task("another home's")
    plant_run(rig, task_id, foreign, 4243, 4243.0)
    rig.tick(T0)
    assert rig.fake.terminated == [] and rig.fake.swept == []
    assert rig.get(task_id).status == "blocked"


def test_this_homes_own_attempt_is_still_adopted(rig: Rig) -> None:
    task_id = rig.task("ours")
    rig.tick(T0)
    handle = rig.run_of(task_id).handle
    assert ownership.owns(rig.store.home, handle.token)
    heir = supervisor(rig.store, rig.fake, pid=5252)
    rig.tick(T0 + 1, sup=heir)
    assert task_id in heir.running


def test_a_reconnect_loop_ends_as_overloaded_after_the_stall_time(rig: Rig) -> None:
    rig.configure("stall_seconds=60")
    task_id = rig.task("codex offline", coder="codex")
    rig.tick(T0)
    handle = rig.run_of(task_id).handle
    for at in range(10, 60, 10):  # a line every 10 s: a plain stall check never fires
        rig.say(task_id, RECONNECT)
        rig.tick(T0 + at)
    assert rig.fake.terminated == []
    rig.say(task_id, RECONNECT)
    rig.tick(T0 + 61)
    assert rig.fake.terminated == [(handle, 7.0)]
    assert rig.tick(T0 + 62).ended == [(task_id, "overloaded")]
    attempt = rig.get(task_id).attempts[-1]
    assert attempt["outcome"] == "overloaded"
    assert "only retries for 60 s" in attempt["reason"] and "Reconnecting" in attempt["reason"]


def test_output_between_retries_is_progress(rig: Rig) -> None:
    rig.configure("stall_seconds=60")
    task_id = rig.task("codex flaky", coder="codex")
    rig.tick(T0)
    for at in range(10, 200, 10):
        rig.say(task_id, RECONNECT if at % 50 else '{"type":"turn.started"}')
        rig.tick(T0 + at)
    assert rig.fake.terminated == []
