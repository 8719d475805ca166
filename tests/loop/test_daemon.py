"""The supervisor loop, `Supervisor.tick(now)`, driven by an explicit clock and FakeProcesses.

Nothing here sleeps: time moves only when a test passes a later `now`, and a fake agent ends only
when a test calls `finish`.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.lifecycle import backoff
from supervisor.model import Task, iso, parse_time
from supervisor.run import control
from supervisor.run import daemon as service
from supervisor.run import supervisor as daemon
from supervisor.run.dispatch import Pick
from supervisor.run.knowledge import RESULT_SHAPE
from supervisor.run.process import TOKEN_ENV, Handle
from supervisor.store.store import Store
from tests.support import scripted_coder
from tests.support.fakes import FakeProcesses
from tests.support.rig import HOST, T0, Rig, claims, supervisor
from tests.support.store_checks import run_record
from tests.support.waiting import wait_for

# -- dispatch: order, caps, dependencies ---------------------------------------------------------


def test_claims_by_priority_then_age(rig: Rig) -> None:
    rig.configure("max_concurrent=1")
    low_old = rig.task("low, old", priority=3)
    mid_old = rig.task("mid, old", priority=1)
    high_new = rig.task("high, new", priority=0)
    mid_new = rig.task("mid, new", priority=1)
    for step in range(4):
        report = rig.tick(T0 + step)
        assert len(report.claimed) == 1
        rig.finish(report.claimed[0])
    assert claims(rig) == [high_new, mid_old, mid_new, low_old]


def test_global_cap_is_read_from_config_at_every_tick(rig: Rig) -> None:
    rig.configure("max_concurrent=2")
    ids = [rig.task(f"t{i}") for i in range(6)]
    assert rig.tick().claimed == ids[:2]
    assert rig.tick().claimed == []
    rig.configure("max_concurrent=5")
    report = rig.tick()
    assert report.claimed == ids[2:5]
    assert report.running == len(rig.fake.running()) == 5
    rig.configure("max_concurrent=1")  # lowering it stops nothing; it only claims less
    assert rig.tick().claimed == []
    assert len(rig.fake.running()) == 5
    rig.finish_all()
    report = rig.tick()
    assert [task_id for task_id, _ in report.ended] == ids[:5]
    assert report.claimed == ids[5:]  # the ends freed the slots in the same tick


def test_per_coder_cap_is_read_from_config_at_every_tick(rig: Rig) -> None:
    rig.configure("max_concurrent=6", "coders.shell.max_concurrent=1")
    shells = [rig.task(f"shell {i}") for i in range(3)]
    scripted = [rig.task(f"scripted {i}", coder="scripted") for i in range(2)]
    report = rig.tick()
    assert report.claimed == [shells[0], *scripted]
    assert rig.tick().claimed == []
    rig.configure("coders.shell.max_concurrent=2")
    assert rig.tick().claimed == [shells[1]]
    rig.configure("coders.shell.max_concurrent=5")
    assert rig.tick().claimed == [shells[2]]


def test_dependent_is_claimed_at_the_tick_after_its_blocker_closes(rig: Rig) -> None:
    rig.configure("backoff_seconds=1")
    blocker = rig.task("blocker")
    dependent = rig.task("dependent", deps=[blocker])
    assert rig.tick(T0).claimed == [blocker]
    rig.finish(blocker, code=1)  # a failed try does not release the dependent
    rig.tick(T0 + 1)
    assert rig.get(blocker).status == "open"
    assert rig.tick(T0 + 5).claimed == [blocker]
    assert rig.tick(T0 + 6).claimed == []
    rig.finish(blocker)
    report = rig.tick(T0 + 7)
    assert report.ended == [(blocker, "success")]
    assert rig.get(blocker).status == "closed"
    assert rig.tick(T0 + 8).claimed == [dependent]


def test_pause_claims_nothing_new_and_running_agents_go_on(rig: Rig) -> None:
    first = rig.task("first")
    rig.tick()
    rig.configure("paused=true")
    second = rig.task("second")
    report = rig.tick()
    assert report.claimed == [] and report.waiting == 1
    rig.finish(first)
    assert rig.tick().ended == [(first, "success")]
    assert rig.get(first).status == "closed"
    rig.configure("paused=false")
    assert rig.tick().claimed == [second]


def test_exactly_once_claims_between_two_supervisors(rig: Rig, home: Path) -> None:
    """Two supervisors (of two hosts) claim from one store; the first race is forced."""
    rig.configure("max_concurrent=4")
    ids = {rig.task(f"t{i}") for i in range(24)}
    other_store = Store.open(home)
    a = supervisor(rig.store, rig.fake, pid=1, host="host-a")
    b = supervisor(other_store, rig.fake, pid=2, host="host-b")
    claimed: dict[str, list[str]] = {"a": [], "b": []}
    lost: list[str] = []
    choose = a._choose

    def racing(snap: Any, now: float) -> list[Pick]:
        chosen = choose(snap, now)
        if not lost:  # a has chosen; b claims the same tasks before a commits
            lost.extend(p.task.id for p in chosen)
            claimed["b"] += b.tick(now).claimed
        return chosen

    a._choose = racing  # type: ignore[method-assign]
    for step in range(30):
        claimed["a"] += a.tick(T0 + step).claimed
        claimed["b"] += b.tick(T0 + step).claimed
        rig.finish_all()
        if all(rig.get(task_id).status == "closed" for task_id in ids):
            break
    other_store.close()
    assert len(lost) == 4 and not set(lost) & set(claimed["a"])
    assert claimed["a"] and claimed["b"]
    assert sorted(claimed["a"] + claimed["b"]) == sorted(ids)  # each claimed once
    started = [run.env["FLEET_TASK_ID"] for run in rig.fake.runs]
    assert sorted(started) == sorted(ids)  # each started once
    for task_id in ids:
        task = rig.get(task_id)
        assert task.status == "closed" and len(task.attempts) == 1


class MeetsAtSpawn(FakeProcesses):
    """A spawn returns only once a second spawn is under way: the starts must overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.meeting = threading.Barrier(2, timeout=10)

    def spawn(self, *args: Any, **kwargs: Any) -> Handle:
        self.meeting.wait()
        return super().spawn(*args, **kwargs)


def test_agents_claimed_together_start_at_once(rig: Rig) -> None:
    ids = [rig.task(f"t{i}") for i in range(2)]
    fake = MeetsAtSpawn()
    report = rig.tick(T0, sup=supervisor(rig.store, fake, pid=81))
    assert report.started == ids
    assert sorted(run.env["FLEET_TASK_ID"] for run in fake.runs) == sorted(ids)


def test_claims_are_committed_before_the_records_of_ended_attempts(rig: Rig) -> None:
    rig.configure("max_concurrent=1")
    first, second = rig.task("first"), rig.task("second")
    rig.tick(T0)
    rig.finish(first)
    report = rig.tick(T0 + 1)
    assert (report.ended, report.claimed) == ([(first, "success")], [second])
    events = rig.store.git.out("log", "-2", "--format=%(trailers:key=Fleet-Event,valueonly)")
    assert events.split() == ["success,started", "claimed"]  # newest first


# -- retries, backoff, blocking ------------------------------------------------------------------


def test_failures_back_off_exponentially_then_block(rig: Rig, fleet: Any) -> None:
    task_id = rig.task("flaky", command="exit 1", max_attempts=3)
    delays = []
    end = T0
    for n in (1, 2, 3):
        assert rig.tick(end).claimed == [task_id]
        rig.finish(task_id, code=1)
        end += 1
        rig.tick(end)
        task = rig.get(task_id)
        assert task.attempts[-1]["outcome"] == "failure"
        assert task.attempts[-1]["counted"] is True
        if n == 3:
            break
        not_before = parse_time(task.not_before)
        delays.append(not_before - end)
        assert rig.sup.next_wake(end) == pytest.approx(not_before)
        assert rig.tick(not_before - 0.01).claimed == []  # not before not_before
        end = not_before
    base = 10.0
    assert base * 0.5 <= delays[0] <= base
    assert base <= delays[1] <= base * 2
    task = rig.get(task_id)
    assert task.status == "blocked"
    assert task.status_reason == "failed 3 attempts; the last: failure: the command exited with 1"
    assert rig.tick(end + 10_000).claimed == []
    shown = fleet("bd", "show", task_id)
    assert "why: failed 3 attempts; the last: failure: the command exited with 1" in shown.out


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    for failures, delay in ((1, 10.0), (2, 20.0), (3, 40.0), (9, 600.0), (30, 600.0)):
        samples = [backoff(failures, 10.0, 600.0, rng) for _ in range(200)]
        assert all(delay * 0.5 <= s <= delay for s in samples)
        assert max(samples) - min(samples) > delay * 0.3  # spread, not a fixed delay


def test_tasks_failing_together_do_not_retry_in_lockstep(rig: Rig) -> None:
    rig.configure("max_concurrent=20")
    for i in range(20):
        rig.task(f"t{i}", command="exit 1")
    rig.tick(T0)
    rig.finish_all(code=1)
    rig.tick(T0 + 1)
    waits = {Task.from_dict(body).not_before for body in rig.store.cache.select(["open"])}
    assert len(waits) == 20


def test_rate_limited_attempts_wait_for_the_reset_and_are_not_counted(rig: Rig) -> None:
    task_id = rig.task("limited", coder="scripted", max_attempts=1)
    claim_at = T0
    for n in (1, 2):
        reset = T0 + 300 * n
        assert rig.tick(claim_at).claimed == [task_id]
        rig.finish(task_id, code=1, lines=[f"{scripted_coder.LIMITED}{reset}"])
        rig.tick(claim_at + 1)
        task = rig.get(task_id)
        attempt = task.attempts[-1]
        assert (attempt["outcome"], attempt["counted"]) == ("rate_limited", False)
        assert attempt["resets_at"] == task.not_before == iso(reset)
        assert task.status == "open"
        assert task.status_reason.startswith("rate_limited: the account hit its limit")
        assert rig.tick(reset - 1).claimed == []
        claim_at = reset
    assert rig.tick(claim_at).claimed == [task_id]  # max_attempts=1, yet a third attempt
    rig.finish(task_id, code=1)
    rig.tick(claim_at + 1)
    task = rig.get(task_id)
    assert task.status == "blocked"  # the one counted failure used up max_attempts=1
    assert task.status_reason.startswith("failed 1 attempts; the last: failure")


# -- limits: stall, timeout, budget --------------------------------------------------------------


def test_silent_agent_is_stopped_as_stalled_and_retried(rig: Rig) -> None:
    rig.configure("stall_seconds=60")
    task_id = rig.task("quiet")
    rig.tick(T0)
    handle = rig.run_of(task_id).handle
    rig.say(task_id, "working")
    rig.tick(T0 + 30)
    rig.tick(T0 + 89)
    assert rig.fake.terminated == []
    rig.tick(T0 + 91)
    assert rig.fake.terminated == [(handle, 7.0)]
    assert rig.tick(T0 + 92).ended == [(task_id, "stalled")]
    task = rig.get(task_id)
    attempt = task.attempts[-1]
    assert (attempt["outcome"], attempt["reason"]) == ("stalled", "no output for 60 s")
    assert attempt["counted"] is True
    assert task.status == "open" and task.not_before


def test_attempt_over_its_wall_clock_limit_is_timed_out(rig: Rig) -> None:
    rig.configure("max_seconds=50", "stall_seconds=20")
    own = rig.task("own limit", max_seconds=100)
    default = rig.task("config limit")
    rig.tick(T0)
    for at in range(10, 101, 10):  # both keep talking: never stalled
        rig.say(own, f"line {at}")
        if rig.fake.run(rig.run_of(default).handle).exit_code is None:
            rig.say(default, f"line {at}")
        rig.tick(T0 + at)
        if at == 50:
            assert rig.fake.terminated == []
        if at == 60:
            assert [h for h, _ in rig.fake.terminated] == [rig.run_of(default).handle]
    assert rig.get(default).attempts[-1]["reason"] == "ran longer than 50 s"
    assert rig.fake.run(rig.run_of(own).handle).exit_code is None
    rig.say(own, "still going")
    rig.tick(T0 + 101)
    rig.tick(T0 + 102)
    task = rig.get(own)  # a task's own --max-seconds is a budget: the task is blocked
    attempt = task.attempts[-1]
    assert (attempt["outcome"], attempt["reason"]) == (
        "over_budget",
        "budget: max_seconds 100 (used 101)",
    )
    assert (task.status, task.status_reason) == ("blocked", "budget: max_seconds 100 (used 101)")


def test_over_budget_attempt_is_stopped_and_the_task_blocked(rig: Rig) -> None:
    task_id = rig.task("spender", coder="scripted", max_tokens=100)
    rig.tick(T0)
    rig.say(task_id, "usage: 60")
    rig.tick(T0 + 1)
    assert rig.fake.terminated == []
    rig.say(task_id, "usage: 90")
    rig.tick(T0 + 2)
    rig.tick(T0 + 3)
    task = rig.get(task_id)
    assert task.attempts[-1]["outcome"] == "over_budget"
    assert task.status == "blocked"
    assert task.status_reason == "budget: max_tokens 100 (used 150)"


# -- setup errors --------------------------------------------------------------------------------


def test_missing_cwd_blocks_at_once_without_retry(rig: Rig, home: Path) -> None:
    gone = rig.work / "gone"
    gone.mkdir()
    task_id = rig.task("nowhere", cwd=str(gone))
    gone.rmdir()
    report = rig.tick(T0)
    assert report.claimed == [task_id] and report.started == []
    task = rig.get(task_id)
    assert task.status == "blocked"
    assert task.status_reason.startswith(f"setup error: the working directory {gone} does not")
    assert [a["outcome"] for a in task.attempts] == ["setup_error"]
    assert rig.fake.runs == []
    assert rig.tick(T0 + 100_000).claimed == []
    assert not (home / "live" / task_id).exists()


def test_unknown_coder_blocks_at_once(rig: Rig) -> None:
    task_id = rig.task("odd", coder="no-such-coder", command="true")
    rig.tick()
    task = rig.get(task_id)
    assert task.status == "blocked"
    assert task.status_reason.startswith("setup error: unknown coder 'no-such-coder' (known: ")
    assert rig.fake.runs == []


def test_missing_binary_blocks_at_once(rig: Rig) -> None:
    rig.fake.missing.add(scripted_coder.BINARY)
    task_id = rig.task("no cli", coder="scripted")
    rig.tick(T0)
    task = rig.get(task_id)
    assert task.status == "blocked"
    assert task.status_reason == (
        f"setup error: the program {scripted_coder.BINARY!r} was not found"
    )
    assert len(task.attempts) == 1
    assert rig.tick(T0 + 100_000).claimed == []


# -- the result contract -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "outcome", "status", "why"),
    [
        ({"status": "done", "summary": "fixed it"}, "success", "closed", ""),
        (
            {"status": "partial", "summary": "half of it"},
            "success",
            "open",
            "attempt 1 success: the agent did part of it: half of it; retry after ",
        ),
        (
            {"status": "blocked", "summary": "needs a token", "open_questions": ["which?"]},
            "success",
            "blocked",
            "the agent is blocked: needs a token",
        ),
        ("{not json", "failure", "open", "attempt 1 failure: the result file is not JSON: "),
        (
            {"status": "finished"},
            "failure",
            "open",
            "attempt 1 failure: the result's status 'finished' is not one of done, partial, "
            "blocked; retry after ",
        ),
        (
            {"status": "done", "open_questions": "none"},
            "failure",
            "open",
            "attempt 1 failure: the result's open_questions is not a list of strings; retry",
        ),
    ],
)
def test_result_contract(
    rig: Rig, result: dict[str, Any] | str, outcome: str, status: str, why: str
) -> None:
    task_id = rig.task("contract")
    rig.tick(T0)
    rig.finish(task_id, result=result)
    rig.tick(T0 + 1)
    task = rig.get(task_id)
    attempt = task.attempts[-1]
    assert attempt["outcome"] == outcome
    assert task.status == status
    assert task.status_reason.startswith(why)
    assert attempt["counted"] is (status == "open")  # an agent that is blocked does not count
    if status == "closed":
        assert task.close_reason == "fixed it"
    if isinstance(result, dict) and outcome == "success":
        assert attempt["summary"] == result["summary"]
        assert attempt["open_questions"] == result.get("open_questions", [])
        assert json.loads(rig.committed(task_id, 1, "result.json") or b"") == result


def test_coder_that_needs_a_result_fails_without_one(rig: Rig) -> None:
    task_id = rig.task("silent finish", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id)
    rig.tick(T0 + 1)
    attempt = rig.get(task_id).attempts[-1]
    assert attempt["outcome"] == "failure"
    assert attempt["reason"] == "the agent finished without writing its result file"


def test_shell_task_without_result_file_closes_on_exit_zero(rig: Rig) -> None:
    task_id = rig.task("plain")
    rig.tick(T0)
    rig.finish(task_id)
    rig.tick(T0 + 1)
    task = rig.get(task_id)
    assert (task.status, task.close_reason) == ("closed", "done")


# -- what an attempt records ---------------------------------------------------------------------


def test_agent_environment_cwd_and_live_files(
    rig: Rig, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", "/somewhere/else/.git")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "someone")
    monkeypatch.setenv("FLEET_TEST_KEEP", "kept")
    task_id = rig.task("env")
    rig.tick()
    run = rig.run_of(task_id)
    live = home / "live" / task_id / "1"
    assert [k for k in run.env if k.startswith("GIT_")] == []
    assert "FLEET_TEST_KEEP" not in run.env  # a shell task gets the allow-list only
    assert run.env["PATH"] == os.environ["PATH"]
    assert run.env["FLEET_HOME"] == str(home)
    assert run.env["FLEET_TASK_ID"] == task_id
    assert run.env["FLEET_ATTEMPT"] == "1"
    assert run.env["FLEET_RESULT_FILE"] == str(live / "result.json")
    assert run.cwd == rig.work
    assert run.argv == ["/bin/sh", "-c", "true"]
    assert (run.stdout, run.stderr) == (live / "output.log", live / "stderr.log")
    assert Path(run.handle.rc_path) == live / "rc"
    assert re.fullmatch(r"[0-9a-f]{48}", run.env[TOKEN_ENV])  # chosen and signed at the claim
    assert rig.get(task_id).run is not None
    assert run_record(rig.get(task_id))["handle"] == run.handle.to_dict()


def test_attempt_record_is_committed_when_it_ends(rig: Rig, home: Path) -> None:
    task_id = rig.task("record", coder="scripted", model="m-7")
    rig.tick(T0)
    run = rig.run_of(task_id)
    assert run.env["SCRIPTED_MODEL"] == "m-7"
    lines = ["plan: read, then write", "hello there", "usage: 42"]
    rig.finish(task_id, lines=lines, result={"status": "done", "summary": "wrote it"})
    with run.stderr.open("a") as err:
        err.write("a warning\n")
    rig.tick(T0 + 12.5)
    record = json.loads(rig.committed(task_id, 1, "attempt.json") or b"")
    task = rig.get(task_id)
    assert task.attempts == [{**record, "counted": False}]
    assert record["n"] == 1
    assert record["outcome"] == "success" and record["exit_code"] == 0
    assert record["started_at"] == iso(T0) and record["ended_at"] == iso(T0 + 12.5)
    assert record["seconds"] == 12.5
    assert record["actor"] == rig.sup.actor == f"supervisor@{HOST}:4242"
    assert record["coder"] == "scripted" and record["model"] == "m-7"
    assert record["usage"]["output_tokens"] == 42
    assert record["lines"] == 3
    assert record["summary"] == "wrote it" and record["result_status"] == "done"
    assert rig.committed(task_id, 1, "output.log") == ("\n".join(lines) + "\n").encode()
    assert rig.committed(task_id, 1, "stderr.log") == b"a warning\n"
    assert rig.committed(task_id, 1, "plan.md") == b"read, then write\n"
    log = (rig.committed(task_id, 1, "log.txt") or b"").decode()
    assert "hello there" in log and "plan: read, then write" in log
    knowledge = (rig.committed(task_id, 1, "knowledge.md") or b"").decode()
    assert run.argv == [scripted_coder.BINARY, "--prompt", knowledge]
    assert not (home / "live" / task_id).exists()
    message = rig.store.git.out("log", "-1", "--format=%B", "refs/heads/main")
    assert f"Fleet-Task: {task_id}" in message
    assert f"Fleet-Actor: {rig.sup.actor}" in message


def test_task_in_a_git_repository_runs_in_its_own_worktree(
    rig: Rig, git_repo: Path, home: Path
) -> None:
    rig.configure("isolation=worktree")
    untracked = git_repo / "new" / "dir"  # git keeps no empty directory: the worktree lacks it
    untracked.mkdir(parents=True)
    task_id = rig.task("in a repo", cwd=str(untracked))
    rig.tick()
    run = rig.run_of(task_id)
    (place,) = (home / "worktrees").glob(f"repo-*/{task_id}")
    assert run.cwd == place / "new" / "dir" and run.cwd.is_dir()
    head = subprocess.run(
        ["git", "-C", str(place), "rev-parse", "--abbrev-ref", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert head.stdout.strip() == f"fleet/{task_id}"
    knowledge = Path(run.env["FLEET_RESULT_FILE"]).with_name("knowledge.md").read_text()
    assert f"Working directory: {run.cwd}\n" in knowledge


def test_running_attempt_is_checkpointed(rig: Rig) -> None:
    rig.configure("checkpoint_seconds=30")
    task_id = rig.task("long")
    rig.tick(T0)
    rig.say(task_id, "first", "second")
    rig.tick(T0 + 10)
    assert rig.committed(task_id, 1, "output.log") is None
    rig.tick(T0 + 31)
    assert rig.committed(task_id, 1, "output.log") == b"first\nsecond\n"
    assert "second" in (rig.committed(task_id, 1, "log.txt") or b"").decode()
    run = run_record(rig.get(task_id))
    assert run["lines"] == 2 and run["last_output_at"] == iso(T0 + 10)


def test_status_file_is_written_once_the_agent_has_news(rig: Rig, home: Path) -> None:
    task_id = rig.task("quiet, then talks")
    rig.tick(T0)
    rig.tick(T0 + 5)
    status = home / "live" / task_id / "1" / "status.json"
    assert not status.exists()  # nothing since the start: the task's record says it all
    rig.say(task_id, "hello")
    rig.tick(T0 + 6)
    assert json.loads(status.read_text())["lines"] == 1


def test_knowledge_holds_the_task_the_handoff_and_the_contract(rig: Rig) -> None:
    design = rig.task("Design the parser", description="Pick a grammar.")
    build = rig.task(
        "Build the parser",
        coder="scripted",
        description="Build it from the design.",
        acceptance_criteria="All parser tests pass.",
        deps=[design],
    )
    rig.tick(T0)
    rig.finish(
        design,
        result={
            "status": "done",
            "summary": "grammar in docs/grammar.md",
            "open_questions": ["LL or LR?"],
        },
    )
    rig.tick(T0 + 1)
    rig.tick(T0 + 2)
    run = rig.run_of(build)
    knowledge = run.argv[-1]
    result_file = run.env["FLEET_RESULT_FILE"]
    assert Path(result_file).with_name("knowledge.md").read_text() == knowledge
    for part in (
        f"# Task {build}: Build the parser",
        "## Description\n\nBuild it from the design.",
        "## Acceptance criteria\n\nAll parser tests pass.",
        f"### {design}: Design the parser (blocks, closed)\ngrammar in docs/grammar.md",
        "- open question: LL or LR?",
        f"Working directory: {rig.work}",
        RESULT_SHAPE,
        f"Write your result as JSON to: {result_file}",
    ):
        assert part in knowledge
    assert "Pick a grammar." not in knowledge  # the dependency's result, not its text


def test_leftover_processes_are_stopped_after_the_attempt_ends(rig: Rig) -> None:
    task_id = rig.task("leaves a server")
    rig.tick(T0)
    run = rig.run_of(task_id)
    rig.fake.finish(run.handle, 0, leftovers=2)
    rig.tick(T0 + 1)
    assert run.leftovers == 0
    assert rig.get(task_id).status == "closed"


def test_leftovers_of_attempts_ending_close_together_are_stopped_in_one_look(rig: Rig) -> None:
    sup = daemon.Supervisor(rig.store, rig.fake, host=HOST, pid=82)  # stops in the background
    ids = [rig.task(f"t{i}") for i in range(3)]
    rig.tick(T0, sup=sup)
    handles = [rig.run_of(task_id).handle for task_id in ids]
    for at, task_id in zip((1.0, 1.1, 1.2), ids, strict=True):
        rig.fake.finish(rig.run_of(task_id).handle, 0, leftovers=1)
        rig.tick(T0 + at, sup=sup)
    sup.wait_stops(10)  # the last look, for what ended since the one before
    assert sorted(rig.fake.cleared, key=len) == [handles[:1], handles[1:]]
    assert [rig.run_of(task_id).leftovers for task_id in ids] == [0, 0, 0]


# -- stopping ------------------------------------------------------------------------------------


@pytest.fixture
def held_lock(store: Store) -> Iterator[None]:
    """The supervisor lock is held, so `control.kill` leaves the stop to the loop."""
    lock = service.acquire(store, "test")
    yield
    lock.release()


def kill_in_thread(
    home: Path, task_id: str, then: str, reason: str = ""
) -> tuple[threading.Thread, list[control.Stopped]]:
    done: list[control.Stopped] = []

    def kill() -> None:
        own = Store.open(home)
        try:
            done.append(control.kill(own, task_id, then, reason, timeout=20))
        finally:
            own.close()

    thread = threading.Thread(target=kill)
    thread.start()
    return thread, done


@pytest.mark.parametrize(
    ("then", "reason", "status", "why", "message"),
    [
        (
            "hold",
            "",
            "blocked",
            "held: stopped by ",
            "stopped {id} (attempt 1); held until `fleet retry {id}` or `fleet resume {id}`",
        ),
        ("requeue", "", "open", "killed by ", "stopped {id} (attempt 1); requeued: it is open"),
        (
            "block",
            "wrong approach",
            "blocked",
            "wrong approach",
            "stopped {id} (attempt 1); blocked: wrong approach",
        ),
        (
            "cancel",
            "not needed",
            "closed",
            "",
            "stopped {id} (attempt 1); cancelled: closed: cancelled: not needed",
        ),
    ],
)
def test_kill_request_is_carried_out_at_the_next_tick(
    rig: Rig,
    home: Path,
    held_lock: None,
    then: str,
    reason: str,
    status: str,
    why: str,
    message: str,
) -> None:
    task_id = rig.task("runaway")
    rig.tick(T0)
    handle = rig.run_of(task_id).handle
    thread, done = kill_in_thread(home, task_id, then, reason)
    wait_for(lambda: run_record(rig.get(task_id)).get("stop"), what="the stop request")
    rig.tick(T0 + 1)
    assert rig.fake.terminated == [(handle, 7.0)]
    rig.tick(T0 + 2)
    thread.join(20)
    assert done and done[0].task.run is None
    assert done[0].message() == message.format(id=task_id)
    task = rig.get(task_id)
    attempt = task.attempts[-1]
    assert attempt["outcome"] == "killed" and attempt["counted"] is False
    assert attempt["reason"].startswith("killed by ")
    assert task.status == status and task.status_reason.startswith(why)
    if then == "requeue":
        assert rig.tick(T0 + 3).claimed == [task_id]
    else:
        assert rig.tick(T0 + 1000).claimed == []
    if then == "cancel":
        assert task.close_reason == "cancelled: not needed"


def test_a_requeued_kill_says_when_the_task_was_claimed_again(
    rig: Rig, home: Path, held_lock: None
) -> None:
    task_id = rig.task("runaway")
    rig.tick(T0)
    thread, done = kill_in_thread(home, task_id, "requeue")
    wait_for(lambda: run_record(rig.get(task_id)).get("stop"), what="the stop request")
    rig.tick(T0 + 1)  # stops it
    rig.tick(T0 + 2)  # records it, and claims it again at once
    rig.tick(T0 + 3)
    thread.join(20)
    # The kill returns once the stop is recorded (tick T0+2); the claim comes at T0+3, so what it
    # says depends on whether it looked before or after that tick: either is true when said.
    assert done[0].message() in (
        f"stopped {task_id} (attempt 1); requeued, and claimed again already (attempt 2)",
        f"stopped {task_id} (attempt 1); requeued: it is open",
    )
    assert run_record(rig.get(task_id)).get("attempt") == 2  # it was claimed again


def test_stop_all_stops_every_agent_and_reopens_their_tasks(rig: Rig) -> None:
    ids = [rig.task(f"t{i}") for i in range(3)]
    rig.tick(T0)
    rig.sup.stop_all()
    assert len(rig.fake.terminated) == 3 and rig.fake.running() == []
    report = rig.tick(T0 + 1)
    assert report.claimed == []
    assert sorted(report.ended) == sorted((i, "killed") for i in ids)
    for task_id in ids:
        task = rig.get(task_id)
        assert (task.status, task.status_reason) == ("open", "stopped with the supervisor")
        assert task.attempts[-1]["counted"] is False and not task.not_before
    assert rig.tick(T0 + 2).claimed == []


# -- recovery ------------------------------------------------------------------------------------


def test_new_supervisor_adopts_a_running_attempt_and_records_its_end(rig: Rig, home: Path) -> None:
    task_id = rig.task("survivor")
    rig.tick(T0)
    rig.say(task_id, "before the crash")
    rig.tick(T0 + 1)
    heir = supervisor(rig.store, rig.fake, pid=5353)
    elsewhere = supervisor(rig.store, rig.fake, pid=5353, host="other-host")
    rig.tick(T0 + 2, sup=elsewhere)
    assert run_record(rig.get(task_id))["actor"] == rig.sup.actor  # another host's: not adopted
    report = rig.tick(T0 + 3, sup=heir)
    assert report.running == 1 and rig.fake.terminated == []
    task = rig.get(task_id)
    assert run_record(task)["actor"] == heir.actor == task.assignee
    rig.finish(task_id, lines=["after the crash"], result={"status": "done", "summary": "ok"})
    assert rig.tick(T0 + 4, sup=heir).ended == [(task_id, "success")]
    task = rig.get(task_id)
    assert task.status == "closed" and task.attempts[-1]["actor"] == heir.actor
    assert len(rig.fake.runs) == 1
    assert rig.committed(task_id, 1, "output.log") == b"before the crash\nafter the crash\n"
    log = (rig.committed(task_id, 1, "log.txt") or b"").decode()
    assert "before the crash" in log and "after the crash" in log


class DiesAtSpawn(FakeProcesses):
    """The supervisor is killed after its claim commit, before the agent starts."""

    def spawn(self, *args: Any, **kwargs: Any) -> Handle:
        raise KeyboardInterrupt


def test_claim_without_an_agent_is_requeued_by_the_next_supervisor(rig: Rig) -> None:
    task_id = rig.task("orphan claim")
    dying = supervisor(rig.store, DiesAtSpawn(), pid=77)
    with pytest.raises(KeyboardInterrupt):
        dying.tick(T0)
    claim = run_record(rig.get(task_id))
    assert rig.get(task_id).status == "in_progress" and claim["token"]
    report = rig.tick(T0 + 1)
    assert report.claimed == []
    task = rig.get(task_id)
    attempt = task.attempts[-1]
    assert (task.status, attempt["outcome"], attempt["counted"]) == ("open", "killed", False)
    assert attempt["reason"] == "the supervisor died before the agent started"
    assert rig.fake.swept == [claim["token"]]  # in case it had started after all
    assert rig.tick(T0 + 2).claimed == [task_id]
    assert run_record(rig.get(task_id))["attempt"] == 2


class DiesAfterSpawn(FakeProcesses):
    """The supervisor is killed as the agent starts, before it records the agent's handle."""

    def spawn(self, *args: Any, **kwargs: Any) -> Handle:
        super().spawn(*args, **kwargs)
        raise KeyboardInterrupt


def test_agent_that_ended_without_a_recorded_handle_is_recorded_not_rerun(rig: Rig) -> None:
    task_id = rig.task("quick one")
    gone = DiesAfterSpawn()
    with pytest.raises(KeyboardInterrupt):
        supervisor(rig.store, gone, pid=76).tick(T0)
    (orphan,) = gone.runs
    gone.finish(orphan.handle, 0, lines=["did it"])  # it ran to its end, unwatched
    assert rig.tick(T0 + 1).claimed == []
    task = rig.get(task_id)
    assert task.status == "closed"
    assert [a["outcome"] for a in task.attempts] == ["success"]
    assert rig.committed(task_id, 1, "output.log") == b"did it\n"
    assert rig.fake.runs == []


def test_agent_started_but_not_committed_is_adopted_from_its_handle_file(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = rig.task("half started")
    dying = supervisor(rig.store, rig.fake, pid=78)
    commit = daemon.commit

    def crash_on_start(store: Store, actor: str, ops: list[Any]) -> set[str]:
        if ops and all(op.event == "started" for op in ops):
            raise KeyboardInterrupt
        return commit(store, actor, ops)

    monkeypatch.setattr(daemon, "commit", crash_on_start)
    with pytest.raises(KeyboardInterrupt):
        dying.tick(T0)
    monkeypatch.setattr(daemon, "commit", commit)
    assert "handle" not in run_record(rig.get(task_id))
    rig.tick(T0 + 1)
    assert run_record(rig.get(task_id))["actor"] == rig.sup.actor
    rig.finish(task_id)
    rig.tick(T0 + 2)
    assert rig.get(task_id).status == "closed"
    assert len(rig.fake.runs) == 1


def test_attempt_ended_before_a_crash_between_the_commits_is_recorded_by_the_next_supervisor(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.configure("max_concurrent=1")
    first, second = rig.task("first"), rig.task("second")
    dying = supervisor(rig.store, rig.fake, pid=80)
    rig.tick(T0, sup=dying)
    rig.finish(first, lines=["done"])
    commit = daemon.commit

    def crash_on_records(store: Store, actor: str, ops: list[Any]) -> set[str]:
        if any(op.ended for op in ops):
            raise KeyboardInterrupt
        return commit(store, actor, ops)

    monkeypatch.setattr(daemon, "commit", crash_on_records)
    with pytest.raises(KeyboardInterrupt):
        dying.tick(T0 + 1)  # the second task is claimed and started, the first not recorded
    monkeypatch.setattr(daemon, "commit", commit)
    assert rig.get(first).status == "in_progress" and rig.get(second).status == "in_progress"
    report = rig.tick(T0 + 2)
    assert report.ended == [(first, "success")] and report.running == 1
    assert rig.get(first).status == "closed"
    assert rig.committed(first, 1, "output.log") == b"done\n"
    assert run_record(rig.get(second))["actor"] == rig.sup.actor
    assert len(rig.fake.runs) == 2  # nothing ran twice


def test_agent_that_died_with_its_supervisor_is_recorded_and_retried(rig: Rig) -> None:
    task_id = rig.task("killed along")
    dying = supervisor(rig.store, rig.fake, pid=79)
    rig.tick(T0, sup=dying)
    rig.fake.run(rig.run_of(task_id).handle).exit_code = -signal.SIGKILL  # no rc file written
    rig.tick(T0 + 1)
    task = rig.get(task_id)
    attempt = task.attempts[-1]
    assert (attempt["outcome"], attempt["exit_code"]) == ("failure", -9)
    assert attempt["reason"] == "the command was killed by signal 9"
    assert task.status == "open" and task.not_before
