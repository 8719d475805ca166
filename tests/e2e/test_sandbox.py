"""The sandbox with real processes: an agent of a sandboxed role, run by a real supervisor in
bubblewrap, writes its worktree and its result, and every escape fails: $HOME, /tmp outside the
worktree, another task's worktree, the repository's own working tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import fleet_process
from tests.support.cli_e2e import Fleet, create, ok, run_supervisor, task_of

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


def escapes(home_dir: Path, repo: Path, other: Path, stamp: str) -> list[Path]:
    return [
        home_dir / f"escape-{stamp}",
        Path("/tmp") / f"fleet-escape-{stamp}",
        other / f"escape-{stamp}",
        repo / f"escape-{stamp}",
        repo / ".git" / "hooks" / f"post-commit-{stamp}",
    ]


def script(targets: list[Path]) -> str:
    """A shell agent that tries every target, reports which writes failed, then does its job."""
    tries = "; ".join(
        f"(echo x > {t} && echo WROTE {t}) 2>/dev/null || echo DENIED {t}" for t in targets
    )
    return (
        f'{tries}; echo done > inside.txt && echo \'{{"status": "done", "summary": "ok",'
        ' "open_questions": []}\' > "$FLEET_RESULT_FILE"'
    )


@pytest.mark.slow
def test_a_sandboxed_agent_cannot_write_outside_its_worktree(
    fleet: Fleet, home: Path, git_repo: Path, tmp_path: Path
) -> None:
    ok(
        fleet(
            "config",
            "set",
            'sandbox_roles=["builder"]',
            "max_seconds=60",
            "stall_seconds=60",
            "roles.builder.coder=shell",
            "deliver=branch",  # the worktree stays for the test to look into
        )
    )
    # another task's worktree, made by running it first (unsandboxed)
    first = create(fleet, "first", "--coder", "shell", "--command", "true", "--cwd", str(git_repo))
    run_supervisor(home, "--until-idle")
    other = Path(task_of(home, first).attempts[0]["workdir"])
    assert other.is_dir() and other != git_repo
    user_home = tmp_path / "user-home"
    targets = escapes(user_home, git_repo, other, "shell")
    task_id = create(
        fleet, "escape", "--coder", "shell", "--role", "builder",
        "--command", script(targets), "--cwd", str(git_repo),
    )  # fmt: skip
    run_supervisor(home, "--until-idle")
    task = task_of(home, task_id)
    [attempt] = task.attempts
    assert attempt["outcome"] == "success", attempt["reason"]
    workdir = Path(attempt["workdir"])
    assert (workdir / "inside.txt").read_text() == "done\n"  # its worktree is writable
    log = ok(fleet("task", task_id, "log", "--raw")).out
    for target in targets:
        assert not target.exists(), target
        assert f"DENIED {target}" in log
    # its commits work: the repository's git dir is writable for it
    subprocess.run(["git", "-C", str(workdir), "status"], check=True, capture_output=True)


@pytest.mark.slow
def test_no_network_when_the_sandbox_says_none(fleet: Fleet, home: Path, tmp_path: Path) -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    work = tmp_path / "work"
    work.mkdir()
    ok(fleet("config", "set", 'sandbox_roles=["*"]', 'sandbox_network="none"'))
    probe = (
        f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\""
        " && echo CONNECTED || echo NO-NETWORK"
    )
    task_id = create(fleet, "probe", "--coder", "shell", "--command", probe, "--cwd", str(work))
    run_supervisor(home, "--until-idle")
    server.close()
    log = ok(fleet("task", task_id, "log", "--raw")).out
    assert "NO-NETWORK" in log and "CONNECTED" not in log


def test_a_missing_bwrap_blocks_the_task_with_the_fix(
    fleet: Fleet, home: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ok(fleet("config", "set", 'sandbox_roles=["*"]'))
    task_id = create(fleet, "x", "--coder", "shell", "--command", "true", "--cwd", str(work))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "python3"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    import os

    env_path = os.environ["PATH"]
    try:
        os.environ["PATH"] = str(bin_dir)
        result = fleet_process("supervisor", "run", "--until-idle", home=home)
    finally:
        os.environ["PATH"] = env_path
    assert result.code == 0, result.err
    task = task_of(home, task_id)
    assert task.status == "blocked"
    assert "the sandbox needs bubblewrap" in task.status_reason
