"""Resuming sessions in the loop: the no-result nudge, and continuing after partial, a rate limit
or a supervisor stop (the scripted coder plays an agent CLI that can resume)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.run import resume
from tests.support import scripted_coder
from tests.support.rig import T0, Rig

pytestmark = pytest.mark.loop


@pytest.fixture
def agent_rig(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setattr(resume, "RESUMABLE", resume.RESUMABLE | {scripted_coder.NAME})
    rig.configure("coder=scripted", "max_attempts=2", "backoff_seconds=0")
    return rig


def prompt_of(rig: Rig, task_id: str) -> str:
    return rig.run_of(task_id).argv[-1]


def next_run(rig: Rig, task_id: str, n: int) -> None:
    for _ in range(20):
        if len(rig.runs_of(task_id)) >= n:
            return
        rig.tick(rig.now + 30)
    raise AssertionError(f"{task_id} was not started a {n}th time")


def test_no_result_is_nudged_in_the_same_session_then_closes(agent_rig: Rig) -> None:
    rig = agent_rig
    task_id = rig.task("forgetful", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id, 0, ["session: s-1", "usage: 500", "all done, I think"])
    rig.tick(T0 + 1)
    task = rig.get(task_id)
    assert task.status == "open" and "resumed once" in task.status_reason
    assert task.attempts[-1]["nudge"] == "due" and not task.attempts[-1]["counted"]
    next_run(rig, task_id, 2)
    run = rig.run_of(task_id)
    assert run.argv[:3] == [scripted_coder.BINARY, "--resume", "s-1"]
    assert prompt_of(rig, task_id).startswith("You stopped without writing your result file")
    assert len(prompt_of(rig, task_id)) < 600  # a nudge, not the whole knowledge again
    rig.finish(task_id, 0, ["session: s-1"], result={"status": "done", "summary": "now written"})
    rig.tick(rig.now + 1)
    task = rig.get(task_id)
    assert task.status == "closed" and task.close_reason == "now written"
    resumed = task.attempts[-1]["resumed"]
    assert resumed == {"session": "s-1", "kind": "nudge", "from_attempt": 1, "tokens_saved": 500}
    assert rig.committed(
        task_id,
        2,
        "knowledge.md",
    ).startswith(b"You stopped")  # type: ignore[union-attr]


def test_still_no_result_after_the_nudge_waits_for_a_person(agent_rig: Rig) -> None:
    rig = agent_rig
    task_id = rig.task("silent", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id, 0, ["session: s-2", "working"])
    rig.tick(T0 + 1)
    next_run(rig, task_id, 2)
    rig.finish(task_id, 0, ["session: s-2", "I fixed the parser and the tests pass"])
    rig.tick(rig.now + 1)
    for _ in range(5):
        rig.tick(rig.now + 600)
    task = rig.get(task_id)
    assert task.status == "blocked" and task.status_reason.startswith("waits for a person")
    assert "I fixed the parser and the tests pass" in task.status_reason
    assert task.attempts[-1]["summary"] == "I fixed the parser and the tests pass"
    assert len(rig.runs_of(task_id)) == 2  # no further attempt burned
    assert not any(a["counted"] for a in task.attempts)


def test_partial_result_resumes_the_session_with_a_continue(agent_rig: Rig) -> None:
    rig = agent_rig
    task_id = rig.task("long job", coder="scripted")
    rig.tick(T0)
    rig.finish(
        task_id, 0, ["session: s-3", "usage: 120"], result={"status": "partial", "summary": "half"}
    )
    rig.tick(T0 + 1)
    next_run(rig, task_id, 2)
    run = rig.run_of(task_id)
    assert "--resume" in run.argv and "s-3" in run.argv
    assert "partial progress (half)" in prompt_of(rig, task_id)
    rig.finish(task_id, 0, [], result={"status": "done", "summary": "all"})
    rig.tick(rig.now + 1)
    task = rig.get(task_id)
    assert task.status == "closed"
    assert task.attempts[-1]["resumed"]["tokens_saved"] == 120


def test_supervisor_stop_then_restart_resumes_the_session(agent_rig: Rig) -> None:
    rig = agent_rig
    task_id = rig.task("interrupted", coder="scripted")
    rig.tick(T0)
    rig.say(task_id, "session: s-4")
    rig.tick(T0 + 1)
    rig.sup.stop_all()
    rig.tick(T0 + 2)
    rig.finish_all(143)
    rig.tick(T0 + 3)
    assert rig.get(task_id).attempts[-1]["reason"] == resume.STOPPED
    rig.sup.stopping = ""
    next_run(rig, task_id, 2)
    assert rig.run_of(task_id).argv[1:3] == ["--resume", "s-4"]
    assert "supervisor restarted" in prompt_of(rig, task_id)


def test_a_failure_starts_afresh(agent_rig: Rig) -> None:
    rig = agent_rig
    task_id = rig.task("broken", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id, 1, ["session: s-5"])
    rig.tick(T0 + 1)
    next_run(rig, task_id, 2)
    assert "--resume" not in rig.run_of(task_id).argv
    assert prompt_of(rig, task_id).startswith(f"# Task {task_id}")


def test_nudge_text_names_the_result_file(tmp_path: Path) -> None:
    from supervisor.model import Task

    task = Task(id="fl-abcd", title="t")
    text = resume.prompt({"kind": "nudge"}, task, tmp_path / "result.json", [])
    assert str(tmp_path / "result.json") in text and json.dumps("done")[1:-1] in text


def test_after_a_rate_limit_the_session_is_resumed(agent_rig: Rig) -> None:
    rig = agent_rig
    task_id = rig.task("limited", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id, 1, ["session: s-6", "usage: 70", f"rate limited until {T0 + 100:.0f}"])
    rig.tick(T0 + 1)
    assert rig.get(task_id).attempts[-1]["outcome"] == "rate_limited"
    next_run(rig, task_id, 2)
    assert rig.run_of(task_id).argv[1:3] == ["--resume", "s-6"]
    assert "rate limit stopped you" in prompt_of(rig, task_id)
