"""What the command line says about real runs: the failure in the log and the reason, `fleet log`
saying why, `supervisor run` ending with what it ran, a task run in place or in a worktree,
`log -f` waiting for a start, a graceful stop saying what it waits for, the demo in a named home.
Real processes (the CLI, the supervisor, shell agents) and real git; waits have deadlines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Result, fleet_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def run(home: Path, *args: str, cwd: Path | None = None) -> Result:
    result = fleet_process(*args, home=home, cwd=cwd)
    assert result.code == 0, (args, result)
    return result


def shell_task(home: Path, command: str, cwd: Path, *args: str) -> str:
    out = run(
        home,
        "bd",
        "create",
        "t",
        "--coder",
        "shell",
        "--command",
        command,
        "--cwd",
        str(cwd),
        "--max-attempts",
        "1",
        *args,
    )
    return out.out.strip()


@pytest.fixture
def quick(home: Path) -> Path:
    run(home, "config", "set", "backoff_seconds=0.2", "grace_seconds=2")
    return home


def test_the_failure_is_in_the_log_the_reason_and_the_trail(quick: Path, git_repo: Path) -> None:
    home = quick
    failed = shell_task(home, "echo reading; cat data.txt", git_repo)
    silent = shell_task(home, "exit 3", git_repo)
    done = shell_task(home, "echo fine", git_repo)
    summary = run(home, "supervisor", "run", "--until-idle").out
    assert summary.strip() == "ran 3 task(s): 1 closed, 2 blocked"
    for raw in ([], ["--raw"]):
        log = run(home, "task", failed, "log", *raw).out
        assert "reading" in log and "--- stderr ---" in log
        assert "cat: data.txt: No such file or directory" in log.split("--- stderr ---")[1]
    logged = json.loads(run(home, "task", failed, "log", "--json").out)
    assert "No such file" in logged["stderr"] and "reading" in logged["log"]
    task = json.loads(run(home, "bd", "show", failed, "--json").out)
    assert task["status_reason"].endswith("cat: data.txt: No such file or directory")
    assert task["attempts"][-1]["reason"] == (
        "the command exited with 1: cat: data.txt: No such file or directory"
    )
    # plan and result point to the log only when it holds something
    plan = fleet_process("task", failed, "plan", home=home)
    assert plan.code == 2 and f"fleet task {failed} log --attempt 1" in plan.err
    plan = fleet_process("task", silent, "result", home=home)
    assert plan.code == 2 and "it printed nothing" in plan.err and "exited with 3" in plan.err
    empty = fleet_process("task", silent, "log", home=home)
    assert empty.code == 0 and empty.out == "" and "printed nothing" in empty.err
    trail = run(home, "log", "-n", "0").out
    assert f"failure {failed}: the command exited with 1: cat: data.txt: No such file" in trail
    assert f"success {done}" in trail
    entries = json.loads(run(home, "log", "--json", "-n", "0").out)
    assert any(e["reasons"].get(failed, "").endswith("No such file or directory") for e in entries)
    overview = run(home, "task", failed).out
    assert "status: blocked" in overview and "cat: data.txt: No such file" in overview


def test_run_json_says_what_it_ran(quick: Path, git_repo: Path) -> None:
    shell_task(quick, "true", git_repo)
    data = json.loads(run(quick, "supervisor", "run", "--until-idle", "--json").out)
    assert data["ran"] == 1 and data["statuses"] == {"closed": 1} and data["attempts"] == 1
    data = json.loads(run(quick, "supervisor", "run", "--until-idle", "--json").out)
    assert data["ran"] == 0


def test_isolation_per_task(quick: Path, git_repo: Path, tmp_path: Path) -> None:
    here = shell_task(quick, f"pwd > {tmp_path}/in-place", git_repo, "--isolation", "none")
    apart = shell_task(quick, f"pwd > {tmp_path}/apart", git_repo)
    run(quick, "supervisor", "run", "--until-idle")
    assert Path((tmp_path / "in-place").read_text().strip()).resolve() == git_repo.resolve()
    assert Path((tmp_path / "apart").read_text().strip()).resolve() != git_repo.resolve()
    assert json.loads(run(quick, "task", apart, "--json").out)["branch"] == f"fleet/{apart}"
    assert json.loads(run(quick, "task", here, "--json").out)["branch"] == ""


def test_log_follow_waits_for_a_task_to_start(quick: Path, git_repo: Path) -> None:
    task_id = shell_task(quick, "echo started; echo oops >&2", git_repo)
    env = {**os.environ, "FLEET_HOME": str(quick)}
    follower = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "task", task_id, "log", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert follower.stderr is not None
        line = follower.stderr.readline()  # it says it waits, and waits
        assert f"waiting for {task_id} to start" in line
        assert follower.poll() is None
        run(quick, "supervisor", "run", "--until-idle")
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert "started" in out and "oops" in out


def test_a_graceful_stop_says_what_it_waits_for(
    quick: Path, git_repo: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    task_id = shell_task(quick, f"while [ ! -e {flag} ]; do sleep 0.1; done; echo done", git_repo)
    run(quick, "supervisor", "start")
    try:
        wait_for(
            lambda: json.loads(run(quick, "supervisor", "status", "--json").out)["agents"] == 1,
            60,
            "the agent to start",
        )
        env = {**os.environ, "FLEET_HOME": str(quick)}
        stopper = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "supervisor", "stop", "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert stopper.stderr is not None
        line = stopper.stderr.readline()
        assert f"waiting for 1 agent(s) to finish: {task_id} (attempt 1" in line
        assert "`fleet supervisor stop --now` stops them" in line
        status = json.loads(run(quick, "supervisor", "status", "--json").out)
        assert status["state"] == "stopping" and status["waiting_for"] == [task_id]
        flag.touch()
        out, _ = stopper.communicate(timeout=60)
        assert "stopped" in out and stopper.returncode == 0
    finally:
        flag.touch()
        fleet_process("supervisor", "stop", "--now", home=quick)
    assert json.loads(run(quick, "bd", "show", task_id, "--json").out)["status"] == "closed"
    assert json.loads(run(quick, "supervisor", "status", "--json").out)["state"] == "stopped"


def test_the_demo_runs_in_the_home_it_is_given(tmp_path: Path) -> None:
    chosen = tmp_path / "demo-home"
    result = fleet_process("demo", "--home", str(chosen), home=tmp_path / "unused")
    assert result.code == 0, result
    assert f"--home {chosen} tasks --all" in result.out.splitlines()[-1]
    listed = json.loads(run(chosen, "bd", "list", "--all", "--json").out)
    assert len(listed) == 5 and {t["status"] for t in listed} == {"closed"}
    via_env = tmp_path / "env-home"
    result = fleet_process("demo", "--json", home=via_env)
    assert result.code == 0, result
    assert json.loads(result.out)["home"] == str(via_env)
