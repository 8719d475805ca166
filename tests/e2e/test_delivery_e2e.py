"""Delivery with real processes: a supervisor killed with -9 in the middle of a merge leaves the
base branch before the merge, and the next supervisor completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.store.store import Store
from tests.conftest import fleet_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_mid_merge_leaves_base_consistent_and_the_merge_resumes(
    store: Store, home: Path, git_repo: Path, tmp_path: Path
) -> None:
    configure.set_values(store, ["coder=shell", "backoff_seconds=0.2", "grace_seconds=1"])
    marker, pid_file = tmp_path / "check-started", tmp_path / "check.pid"
    # the check hangs the first time (the supervisor is killed while it runs), passes after
    check = (
        f"if [ ! -e {marker} ]; then touch {marker}; echo $$ > {pid_file}; sleep 120; fi; "
        "test -f made.txt"
    )
    result = '{"status":"done","summary":"made it"}'
    command = f"echo made > made.txt; printf '{result}' > \"$FLEET_RESULT_FILE\""
    task_id = create(
        store, NewTask(title="make", coder="shell", command=command, cwd=str(git_repo), check=check)
    ).id
    before = git(git_repo, "rev-parse", "main")
    env = {**os.environ, "FLEET_HOME": str(home)}
    first = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "supervisor", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(pid_file.exists, 30, "the check to start")
        check_pid = int(wait_for(lambda: pid_file.read_text().strip(), 5, "the check's pid"))
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert git(git_repo, "rev-parse", "main") == before  # before the merge, not half of it
    assert git(git_repo, "status", "--porcelain") == ""
    task = store.get(task_id)
    assert task.status == "closed" and (task.delivery or {}).get("state") == "queued"
    assert psutil.pid_exists(check_pid)  # the orphaned check still runs...
    done = fleet_process("supervisor", "run", "--until-idle", home=home, timeout=60)
    assert done.code == 0, done.err
    wait_for(
        lambda: (
            not psutil.pid_exists(check_pid)
            or psutil.Process(check_pid).status() == psutil.STATUS_ZOMBIE
        ),
        10,
        "the stale check to stop",
    )  # ...until the next merge stops it
    task = store.get(task_id)
    assert (task.delivery or {}).get("state") == "merged", (task.status_reason, task.delivery)
    assert git(git_repo, "show", "main:made.txt") == "made"
    assert (git_repo / "made.txt").read_text() == "made\n"
    merges = git(git_repo, "log", "--merges", "--format=%s", "main").splitlines()
    assert merges == [f"Merge fleet/{task_id}: make"]  # once, not twice
