"""The supervisor end to end: real agent processes (shell tasks), real git, the real CLI.

Every wait is on a condition with a deadline. Agents record what they did in files of the test's
own directory; no test looks at the clock to decide whether something happened.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from supervisor.model import Task, iso
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.run import daemon as service
from supervisor.run.knowledge import RESULT_SHAPE
from supervisor.run.process import TOKEN_ENV, Handle, OsProcesses
from supervisor.run.supervisor import Supervisor
from supervisor.store.paths import run_file
from supervisor.store.store import Change, Snapshot, Store
from tests.conftest import Result, fleet_process
from tests.support.store_checks import run_record
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

STAMP = "date +%s.%N"  # the agents' clock, nanoseconds


def add(store: Store, command: str, cwd: Path, **fields: Any) -> str:
    return create(
        store,
        NewTask(
            title=fields.pop("title", command[:40]),
            coder="shell",
            command=command,
            cwd=str(cwd),
            **fields,
        ),
    ).id


def add_many(store: Store, commands: list[str], cwd: Path) -> list[str]:
    """Queue many shell tasks in one commit (oldest first)."""
    base = time.time()
    tasks = [
        Task(
            id=f"fl-e{i:03d}",
            title=f"task {i}",
            coder="shell",
            command=command,
            cwd=str(cwd),
            created_at=iso(base + i / 1000),
            updated_at=iso(base + i / 1000),
        )
        for i, command in enumerate(commands)
    ]

    def build(snap: Snapshot) -> tuple[Change, None]:
        change = Change(f"add {len(tasks)} tasks", "created")
        for task in tasks:
            change.put(task)
        return change, None

    store.mutate(build)
    return [t.id for t in tasks]


def carriers(home: Path, token: str | None = None) -> list[psutil.Process]:
    """Live processes of agents of this home (all of them, or one attempt's)."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if TOKEN_ENV not in env or env.get("FLEET_HOME") != str(home):
                continue
            wanted = token is None or env[TOKEN_ENV] == token
            if wanted and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def statuses(store: Store, ids: list[str]) -> Counter[str]:
    return Counter(store.get(i).status for i in ids)


def token_of(store: Store, task_id: str) -> str:
    """The token of the task's running agent, once its start is recorded."""

    def started() -> str:
        run = run_record(store.get(task_id))
        return str(run["token"]) if run.get("handle") else ""

    return wait_for(started, what=f"{task_id} to start")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def intervals(log: Path) -> dict[str, tuple[float, float]]:
    """name -> (start, end) from lines 'start NAME T' and 'end NAME T'."""
    seen: dict[str, dict[str, float]] = {}
    for line in log.read_text().splitlines():
        what, name, stamp = line.split()
        seen.setdefault(name, {})[what] = float(stamp)
    return {name: (t["start"], t["end"]) for name, t in seen.items()}


def timed(log: Path, name: str, body: str = "sleep 0.2") -> str:
    return f'echo "start {name} $({STAMP})" >> {log}; {body}; echo "end {name} $({STAMP})" >> {log}'


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def quick(store: Store) -> Store:
    """A store whose tasks run in place (no worktree), with short retries and stops."""
    configure.set_values(
        store, ["coder=shell", "isolation=none", "backoff_seconds=0.2", "grace_seconds=1"]
    )
    return store


@pytest.fixture
def daemon(home: Path) -> Iterator[Callable[[], int]]:
    """Starts `fleet supervisor start`; whatever runs at the end is stopped."""

    def start() -> int:
        started = fleet_process("supervisor", "start", home=home)
        assert started.code == 0, started.err
        match = re.search(r"pid (\d+)", started.out)
        assert match, started.out
        return int(match.group(1))

    yield start
    fleet_process("supervisor", "stop", "--now", "--timeout", "30", home=home)
    for proc in carriers(home):
        proc.kill()


def run_until_idle(home: Path) -> Result:
    done = fleet_process("supervisor", "run", "--until-idle", home=home)
    assert done.code == 0, done.err
    return done


# -- order, limits, exactly once -----------------------------------------------------------------


def test_dependencies_run_in_order(quick: Store, work: Path, home: Path) -> None:
    log = work / "times.log"
    first = add(quick, timed(log, "first"), work)
    left = add(quick, timed(log, "left"), work, deps=[first])
    right = add(quick, timed(log, "right"), work, deps=[first])
    last = add(quick, timed(log, "last", "true"), work, deps=[left, right])
    run_until_idle(home)
    assert statuses(quick, [first, left, right, last]) == {"closed": 4}
    times = intervals(log)
    for blocker, dependent in (("first", "left"), ("first", "right"), ("left", "last")):
        assert times[dependent][0] > times[blocker][1], (blocker, dependent)
    assert times["last"][0] > times["right"][1]
    assert times["left"][0] < times["right"][1] and times["right"][0] < times["left"][1]


def test_max_concurrent_is_never_exceeded(quick: Store, work: Path, home: Path) -> None:
    configure.set_values(quick, ["max_concurrent=3"])
    log = work / "times.log"
    ids = add_many(quick, [timed(log, f"t{i}", "sleep 0.3") for i in range(9)], work)
    run_until_idle(home)
    assert statuses(quick, ids) == {"closed": 9}
    edges = sorted(
        (t, step) for start, end in intervals(log).values() for t, step in ((start, 1), (end, -1))
    )
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 3


def test_a_hundred_quick_tasks_each_run_exactly_once(quick: Store, work: Path, home: Path) -> None:
    configure.set_values(quick, ["max_concurrent=16"])
    ran = work / "ran"
    ids = add_many(quick, [f'echo "$FLEET_TASK_ID" >> {ran}'] * 100, work)
    run_until_idle(home)
    assert Counter(ran.read_text().split()) == Counter(ids)
    assert statuses(quick, ids) == {"closed": 100}
    assert carriers(home) == []


def test_kill_9_of_the_daemon_mid_run_loses_and_repeats_nothing(
    quick: Store, work: Path, home: Path, daemon: Callable[[], int]
) -> None:
    configure.set_values(quick, ["max_concurrent=4"])
    ran = work / "ran"
    ids = add_many(quick, [f'sleep 0.2; echo "$FLEET_TASK_ID" >> {ran}'] * 30, work)
    pid = daemon()
    wait_for(lambda: statuses(quick, ids)["closed"] >= 6, 30, "six tasks done")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), what="the supervisor to die")
    # Its lock goes with its last thread, a moment after the main thread is a zombie.
    wait_for(lambda: service.running(quick) is None, 10, "the dead supervisor's lock to go")
    orphans = [i for i in ids if quick.get(i).status == "in_progress"]
    assert orphans, "the kill landed while no agent ran"
    second = daemon()
    assert second != pid
    wait_for(lambda: statuses(quick, ids)["closed"] == 30, 60, "every task done")
    stopped = fleet_process("supervisor", "stop", home=home)
    assert stopped.code == 0, stopped.err
    twice = {i: quick.get(i).attempts for i, n in Counter(ran.read_text().split()).items() if n > 1}
    assert twice == {}
    assert Counter(ran.read_text().split()) == Counter(ids)
    for task_id in ids:
        outcomes = [a["outcome"] for a in quick.get(task_id).attempts]
        assert outcomes.count("success") == 1, (task_id, outcomes)
    assert quick.cache.select(["in_progress"]) == []
    assert carriers(home) == []
    events = quick.git.out("log", "--format=%s", "refs/heads/main")
    assert "adopted" in events or "requeued" in events


# -- stopping ------------------------------------------------------------------------------------


def test_fleet_kill_stops_the_whole_tree_and_only_that_task(
    quick: Store, work: Path, home: Path, daemon: Callable[[], int]
) -> None:
    escapee = work / "escapee.sid"
    with_grandchild = add(
        quick, f"setsid sh -c 'ps -o sid= -p $$ > {escapee}; sleep 60' & sleep 60", work
    )
    second = add(quick, "sleep 60", work)
    third = add(quick, "sleep 60", work)
    pid = daemon()
    tokens = {i: token_of(quick, i) for i in (with_grandchild, second, third)}
    wait_for(lambda: escapee.exists() and escapee.read_text().strip(), what="the setsid child")
    wrapper = run_record(quick.get(with_grandchild))["handle"]["pid"]
    assert int(escapee.read_text()) != wrapper  # it left the agent's session

    killed = fleet_process("kill", with_grandchild, "--block", "enough", home=home)
    assert killed.code == 0, killed.err
    assert killed.out.strip() == f"stopped {with_grandchild} (attempt 1); blocked: enough"
    assert carriers(home, tokens[with_grandchild]) == []
    assert carriers(home, tokens[second]) and carriers(home, tokens[third])

    os.kill(pid, signal.SIGKILL)  # now no supervisor runs: `fleet kill` stops it itself
    wait_for(lambda: gone(pid), what="the supervisor to die")
    killed = fleet_process("kill", second, "--json", home=home)
    assert killed.code == 0, killed.err
    assert carriers(home, tokens[second]) == []
    assert carriers(home, tokens[third]), "fleet kill stopped a task it was not asked to"
    assert quick.get(third).status == "in_progress"
    task = quick.get(second)
    assert task.status == "blocked" and task.attempts[-1]["outcome"] == "killed"
    assert task.status_reason.startswith("held: stopped by ")
    assert json.loads(killed.out) == {
        "id": second,
        "stopped_attempt": 1,
        "then": "hold",
        "outcome": "killed",
        "status": "blocked",
        "status_reason": task.status_reason,
        "close_reason": "",
        "message": f"stopped {second} (attempt 1); held until `fleet retry {second}` or "
        f"`fleet resume {second}`",
    }
    assert quick.read(run_file(second, 1, "attempt.json")), "the attempt's record is committed"
    assert not (home / "live" / second).exists()


class DiesAfterSpawn(OsProcesses):
    """The supervisor is killed as the agent starts, before it records the agent's handle."""

    def spawn(self, *args: Any, **kwargs: Any) -> Handle:
        super().spawn(*args, **kwargs)
        raise KeyboardInterrupt


def test_agent_started_by_a_supervisor_that_died_at_once_is_stopped(
    quick: Store, work: Path, home: Path
) -> None:
    task_id = add(quick, "sleep 30", work)
    with pytest.raises(KeyboardInterrupt):
        Supervisor(quick, DiesAfterSpawn(), pid=1, background_stops=False).tick(time.time())
    token = str(run_record(quick.get(task_id))["token"])
    # the agent runs with the token of the claim (a loaded machine may take a moment to exec it)
    wait_for(lambda: carriers(home, token), 30, "the agent to run with the claim's token")
    Supervisor(quick, OsProcesses(), pid=2, background_stops=False).tick(time.time())
    assert carriers(home, token) == []
    task = quick.get(task_id)
    assert task.status == "open"
    assert task.attempts[-1]["reason"] == (
        "the supervisor died as the agent started; the agent was stopped"
    )


def test_agent_ignoring_sigterm_is_killed_after_the_grace(
    quick: Store, work: Path, home: Path
) -> None:
    configure.set_values(quick, ["grace_seconds=0.5", "max_seconds=1"])
    task_id = add(quick, "trap '' TERM; echo up; sleep 30", work, max_attempts=1)
    started = time.monotonic()
    service.Loop(quick).run(until_idle=True)
    assert time.monotonic() - started < 10
    task = quick.get(task_id)
    attempt = task.attempts[-1]
    assert (attempt["outcome"], attempt["reason"]) == ("timed_out", "ran longer than 1 s")
    assert attempt["seconds"] >= 1.5  # the limit, then the whole grace before the KILL
    assert task.status == "blocked"
    assert carriers(home) == []


def test_start_twice_status_and_graceful_stop(
    quick: Store, work: Path, home: Path, daemon: Callable[[], int], fleet: Any
) -> None:
    pid = daemon()
    again = fleet_process("supervisor", "start", home=home)
    assert again.code == 1
    assert f"a supervisor already runs for {home} (pid {pid})" in again.err
    data = json.loads(fleet("supervisor", "status", "--json").out)
    assert data["running"] is True and data["pid"] == pid
    assert data["uptime_seconds"] >= 0 and data["paused"] is False
    assert data["home"] == str(home)
    assert {"agents", "queued", "blocked", "rss_mb"} <= set(data)

    gate = work / "gate"
    task_id = add(quick, f"echo started; until [ -e {gate} ]; do sleep 0.02; done; echo done", work)
    wait_for(lambda: fleet("task", task_id, "log").out.endswith(" started\n"), what="a live log")
    rows = json.loads(fleet("tasks", "--json").out)
    assert [(r["id"], r["status"], r["attempt"]) for r in rows] == [(task_id, "in_progress", 1)]
    assert rows[0]["idle"] is not None
    assert json.loads(fleet("supervisor", "status", "--json").out)["agents"] == 1

    stopping = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "supervisor", "stop"],
        env={**os.environ, "FLEET_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    daemon_log = service.log_path(quick)
    wait_for(lambda: "stop requested" in daemon_log.read_text(), what="the stop request")
    gate.touch()  # the agent may finish now: a graceful stop waits for it
    out, _ = stopping.communicate(timeout=30)
    assert stopping.returncode == 0 and out == f"supervisor (pid {pid}) stopped\n"
    assert quick.get(task_id).status == "closed"
    assert fleet("task", task_id, "log", "--raw").out == "started\ndone\n"
    data = json.loads(fleet("supervisor", "status", "--json").out)
    assert data["running"] is False and data["pid"] is None


def test_stop_now_stops_the_agents_and_reopens_their_tasks(
    quick: Store, work: Path, home: Path, daemon: Callable[[], int]
) -> None:
    daemon()
    task_id = add(quick, "sleep 60", work)
    token = token_of(quick, task_id)
    wait_for(lambda: carriers(home, token), what="the agent")
    stopped = fleet_process("supervisor", "stop", "--now", home=home)
    assert stopped.code == 0, stopped.err
    task = quick.get(task_id)
    assert (task.status, task.status_reason) == ("open", "stopped with the supervisor")
    assert task.attempts[-1]["outcome"] == "killed" and task.attempts[-1]["counted"] is False
    assert carriers(home, token) == []


# -- where and how an agent runs -----------------------------------------------------------------


def test_agent_runs_in_its_worktree_detached_with_a_clean_environment(
    store: Store, git_repo: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # isolation: the default, worktree; the branch is left for the user (not merged, not pruned)
    configure.set_values(store, ["coder=shell", "deliver=branch"])
    monkeypatch.setenv("GIT_AUTHOR_NAME", "not for agents")
    report = tmp_path / "report"
    command = (
        f"{{ pwd; git rev-parse --abbrev-ref HEAD; readlink /proc/self/fd/0; "
        f"ps -o sid= -p $$; env; }} > {report}; "
        "echo work > made.txt && git add made.txt && "
        "git -c user.name=agent -c user.email=agent@fleet.invalid commit -qm work"
    )
    task_id = add(store, command, git_repo)
    service.Loop(store).run(until_idle=True)
    assert store.get(task_id).status == "closed", store.get(task_id).status_reason
    where, branch, stdin, sid, *env_lines = report.read_text().splitlines()
    place = Path(where)
    assert place.parent.parent == home / "worktrees"
    assert re.fullmatch(r"repo-[0-9a-f]{8}", place.parent.name) and place.name == task_id
    assert branch == f"fleet/{task_id}"
    assert stdin == "/dev/null"
    assert int(sid) != os.getsid(0)
    env = dict(line.split("=", 1) for line in env_lines if "=" in line)
    assert not [k for k in env if k.startswith("GIT_")]
    assert env["FLEET_TASK_ID"] == task_id and env["FLEET_ATTEMPT"] == "1"
    assert env["FLEET_HOME"] == str(home)
    assert env["FLEET_RESULT_FILE"] == str(home / "live" / task_id / "1" / "result.json")
    shown = subprocess.run(
        ["git", "-C", str(git_repo), "show", f"fleet/{task_id}:made.txt"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == "work\n"  # the branch is kept, with the agent's commit
    assert place.is_dir() and not (git_repo / "made.txt").exists()


# -- the CLI around the loop ---------------------------------------------------------------------


def test_task_views_after_a_run(quick: Store, work: Path, fleet: Any) -> None:
    result = {"status": "done", "summary": "said hello", "open_questions": ["louder?"]}
    command = f"echo hello; echo world >&2; echo '{json.dumps(result)}' > \"$FLEET_RESULT_FILE\""
    task_id = add(quick, command, work, title="Greet", acceptance_criteria="It says hello.")
    service.Loop(quick).run(until_idle=True)

    assert json.loads(fleet("tasks", "--json").out) == []  # closed tasks need --all
    (row,) = json.loads(fleet("tasks", "--all", "--json").out)
    assert row["id"] == task_id and row["status"] == "closed" and row["attempt"] == 1
    assert row["coder"] == "shell" and row["title"] == "Greet" and row["cwd"] == str(work)
    assert row["idle"] is None and row["tokens_in"] == 0 and row["cost_usd"] == 0
    assert {"model", "account", "elapsed", "tokens_out", "why", "priority"} <= set(row)
    table = fleet("tasks", "--all").out
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "CODER"] and task_id in table

    log = fleet("task", task_id, "log").out
    assert re.fullmatch(r"\d\d:\d\d:\d\d hello\n--- stderr ---\nworld\n", log)
    assert fleet("task", task_id, "log", "--raw").out == "hello\n--- stderr ---\nworld\n"
    knowledge = fleet("task", task_id, "knowledge").out
    assert knowledge.startswith(f"# Task {task_id}: Greet\n")
    assert "It says hello." in knowledge and RESULT_SHAPE in knowledge
    assert json.loads(fleet("task", task_id, "result").out) == result
    attempts = json.loads(fleet("task", task_id, "attempts", "--json").out)
    assert [(a["n"], a["outcome"], a["exit_code"]) for a in attempts] == [(1, "success", 0)]
    assert "success" in fleet("task", task_id, "attempts").out
    usage = json.loads(fleet("task", task_id, "usage", "--json").out)
    assert usage["task"] == task_id and usage["total"]["input_tokens"] == 0
    assert usage["total"]["seconds"] == attempts[0]["seconds"]
    no_plan = fleet("task", task_id, "plan")
    assert no_plan.code == 2 and f"attempt 1 of {task_id} has no plan recorded" in no_plan.err


def test_pause_and_resume(quick: Store, work: Path, fleet: Any) -> None:
    assert fleet("pause").code == 0
    task_id = add(quick, "true", work)
    service.Loop(quick).run(once=True)
    assert quick.get(task_id).status == "open"
    service.Loop(quick).run(until_idle=True)  # paused, nothing runs: idle, it returns
    assert quick.get(task_id).status == "open"
    status = json.loads(fleet("supervisor", "status", "--json").out)
    assert status["paused"] is True and status["queued"] == 1
    assert "(paused: claiming nothing new)" in fleet("supervisor", "status").out
    assert fleet("resume").code == 0
    service.Loop(quick).run(until_idle=True)
    assert quick.get(task_id).status == "closed"


def test_retry_of_a_blocked_task(quick: Store, work: Path, fleet: Any) -> None:
    task_id = add(quick, "test -e ok || exit 4", work, max_attempts=1)
    service.Loop(quick).run(until_idle=True)
    shown = fleet("bd", "show", task_id).out
    assert "status: blocked" in shown
    assert "why: failed 1 attempts; the last: failure: the command exited with 4" in shown
    (work / "ok").touch()
    retried = fleet("retry", task_id)
    assert retried.code == 0 and retried.out == f"{task_id} is open again\n"
    service.Loop(quick).run(until_idle=True)
    task = quick.get(task_id)
    assert task.status == "closed"
    assert [a["outcome"] for a in task.attempts] == ["failure", "success"]


def test_demo_runs_without_any_agent_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools"  # only what the demo's shell tasks use: no agent CLI at all
    tools.mkdir()
    for name in ("sh", "git", "mkdir", "sleep", "touch"):
        found = subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True, text=True)
        (tools / name).symlink_to(found.stdout.strip())
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    started = time.monotonic()
    shown = fleet_process("demo", home=tmp_path / "unused", timeout=30)
    assert time.monotonic() - started < 30
    assert shown.code == 0, shown.err
    out = shown.out
    assert "$ fleet tasks --all" in out
    header = next(line for line in out.splitlines() if line.startswith("ID "))
    assert header.split()[:2] == ["ID", "STATUS"]
    assert len(re.findall(r"^fl-\w+ +closed ", out, re.M)) == 5
    assert re.search(
        r"^  #1 failure the command exited with 1: tests failed: flaky network$", out, re.M
    )
    assert re.search(r"^\$ fleet task fl-\w+ log$", out, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d this branch starts with the work", out, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d main\.py$", out, re.M)  # a blocker's file
    tail = out[out.index(" log main   # where the work ended up") :]
    assert len(re.findall(r"Merge fleet/fl-\w+: ", tail)) >= 4  # setup changed nothing
    for summary in ("main.py prints 42", "README.md written", "VERSION written; shipped"):
        assert re.search(rf"^\w+  shell +{summary}$", tail, re.M)
    assert re.search(r"^\$ fleet task fl-\w+ knowledge\n# Task fl-\w+: Ship it$", out, re.M)
    assert "## What the tasks this one depends on produced" in out
