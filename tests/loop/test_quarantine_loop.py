"""Risk and quarantine in the supervisor loop (a fake clock, fake processes, real git worktrees):
a scripted agent that deletes tests and loops on errors is quarantined in the tick its record
crosses the threshold, with its evidence, and gets no new claim; a well-behaved one is never
quarantined over 200 tasks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from supervisor.store import quarantine
from supervisor.store.history import entries
from tests.support.rig import Rig

IDENT = ["-c", "user.name=agent", "-c", "user.email=agent@fleet.invalid"]


def repo(path: Path, tests: int = 5) -> None:
    """`path` as a git repository with a test suite."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "tests").mkdir()
    for i in range(tests):
        (path / "tests" / f"test_{i}.py").write_text(f"def test_{i}():\n    assert True\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('app')\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), *IDENT, "commit", "-qm", "init"], check=True)


def commit_all(path: Path, message: str) -> None:
    """Commit what the agent left (fleet may have committed it at the attempt's end already)."""
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(path), *IDENT, "commit", "-qm", message, "--allow-empty"], check=True
    )


def held(rig: Rig) -> dict[str, dict[str, object]]:
    return quarantine.read(rig.store, rig.store.head())


@pytest.fixture(autouse=True)
def _roles(rig: Rig) -> None:
    rig.configure("roles.rogue.coder=shell", "roles.dev.coder=shell")


def test_an_agent_that_deletes_tests_and_loops_on_errors_is_quarantined(rig: Rig) -> None:
    repo(rig.work)
    rig.configure("isolation=worktree", "max_attempts=10", "backoff_seconds=1")
    task_id = rig.task("misbehave", role="rogue")
    scores = []
    for n in range(5):
        rig.tick(rig.now + 30)
        run = rig.run_of(task_id)
        assert len(rig.runs_of(task_id)) == n + 1
        (run.cwd / "tests" / f"test_{n}.py").unlink()  # it deletes a test...
        rig.finish(task_id, code=1, lines=["error: it does not work"])  # ...and fails
        report = rig.tick(rig.now + 1)
        assert report.ended == [(task_id, "failure")]
        score = {a.subject: a.score for a in rig.sup.hooks.governor.assessments}["role:rogue"]
        scores.append(score)
        if score >= 0.9:
            break
    # the first attempt alone stays under the threshold; the second crosses it
    assert scores[0] < 0.9 <= scores[-1]
    assert len(scores) == 2
    record = held(rig)["role:rogue"]  # quarantined in the very tick it crossed
    assert record["automatic"] is True
    evidence = "\n".join(record["evidence"])  # type: ignore[arg-type]
    assert "deleted the test file tests/test_0.py" in evidence
    assert "deleted the test file tests/test_1.py" in evidence
    assert f"{task_id}#2 failure" in evidence
    events = [e for e in entries(rig.store, 0) if e.event == "quarantined"]
    [event] = events
    assert event.summary.startswith("quarantine role:rogue: risk ")
    # no new claim: its retry waits, saying why
    rig.tick(rig.now + 60)
    rig.tick(rig.now + 60)
    assert len(rig.runs_of(task_id)) == 2
    waiting = json.loads((rig.store.home / "live" / "waiting.json").read_text())
    assert "role:rogue is quarantined" in waiting[task_id]
    # other roles go on
    other = rig.task("fine", role="dev")
    rig.tick(rig.now + 1)
    assert rig.runs_of(other)
    # released, it runs again
    quarantine.release(rig.store, "role:rogue", "tester", "fixed the handbook")
    rig.tick(rig.now + 1)
    assert len(rig.runs_of(task_id)) == 3


def test_a_quarantine_can_stop_the_running_attempt(rig: Rig) -> None:
    repo(rig.work)
    rig.configure("isolation=worktree", "risk_stop_running=true")
    task_id = rig.task("wipes the suite")
    rig.tick()
    run = rig.run_of(task_id)
    for i in range(5):
        (run.cwd / "tests" / f"test_{i}.py").unlink()
    (run.cwd / ".github" / "workflows").mkdir(parents=True)
    (run.cwd / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    rig.say(task_id, "working")
    rig.tick(rig.now + 31)  # the next read of the running agent's worktree sees it
    record = held(rig)[f"task:{task_id}"]
    assert "touched the CI file .github/workflows/ci.yml" in "\n".join(record["evidence"])  # type: ignore[arg-type]
    rig.tick(rig.now + 1)  # the supervisor stops it
    rig.tick(rig.now + 10)
    task = rig.get(task_id)
    assert task.status == "blocked"
    assert task.status_reason.startswith(f"quarantined: task:{task_id}")


def test_a_well_behaved_agent_is_never_quarantined_over_200_tasks(rig: Rig) -> None:
    repo(rig.work)
    rig.configure("isolation=worktree", "max_concurrent=4", "backoff_seconds=1")
    ids = [rig.task(f"feature {i}", role="dev") for i in range(200)]
    worst = 0.0
    attempts = 0
    for _ in range(2000):
        rig.tick(rig.now + 1)
        worst = max([worst, *(a.score for a in rig.sup.hooks.governor.assessments)])
        for run in rig.fake.running():
            attempts += 1
            (run.cwd / "src" / f"{run.env['FLEET_TASK_ID']}.py").write_text("x = 1\n" * 20)
            if attempts % 25 == 0:  # now and then an attempt fails, and is retried
                rig.fake.finish(run.handle, 1, ["flaky network"])
                continue
            commit_all(run.cwd, "feature")
            rig.fake.finish(run.handle, 0, ["done"])
        if not rig.fake.running() and all(rig.get(i).status == "closed" for i in ids):
            break
    assert all(rig.get(i).status == "closed" for i in ids)
    assert held(rig) == {}
    assert [e for e in entries(rig.store, 0) if e.event == "quarantined"] == []
    assert 0 < worst < 0.5
