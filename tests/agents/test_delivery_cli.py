"""Delivery with the REAL agent CLIs (a real `fleet supervisor` process, fleet's mock model
servers): the file an agent writes arrives on the base branch with the agent as its author, and
an agent that ends without its result file is resumed in the same session with a nudge."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import coders
from coders.check.mock.base import FINAL_TEXT, HELLO_NAME, HELLO_TEXT, Script
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    create,
    mock_for,
    ok,
    point_at,
    run_supervisor,
    task_of,
    use_clis,
)

pytestmark = pytest.mark.cli

RESUMING = ("claude", "codex", "gemini", "opencode")


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def gemini_settings(tmp_path: Path) -> None:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"maxAttempts": 1},
    }
    folder = tmp_path / "user-home" / ".gemini"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings))


def test_claude_writes_a_file_that_arrives_on_the_base_branch_authored_by_it(
    fleet: Fleet, home: Path, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_clis(monkeypatch, "claude")
    ok(fleet("config", "set", *QUICK_CONFIG))
    with mock_for("claude", Script()) as mock:
        point_at(monkeypatch, "claude", mock, coders.get("claude").key_env)
        task_id = create(fleet, "write hello", "--coder", "claude", "--cwd", str(git_repo))
        run_supervisor(home, "--until-idle")
    task = task_of(home, task_id)
    assert task.status == "closed", task.status_reason
    assert task.delivery and task.delivery["state"] == "merged", task.delivery
    assert git(git_repo, "show", f"main:{HELLO_NAME}") + "\n" == HELLO_TEXT
    assert (git_repo / HELLO_NAME).read_text() == HELLO_TEXT  # the user's clean tree follows
    model = task.attempts[-1]["model"]
    line = git(git_repo, "log", "-1", "--format=%an|%ae|%B", "--", HELLO_NAME)
    author, email, body = line.split("|", 2)
    assert author == f"claude ({model})" and email == "claude@fleet.invalid"
    assert body.startswith("Wrote hello.txt.")
    assert f"Fleet-Task: {task_id}" in body and "Fleet-Coder: claude" in body
    assert f"Fleet-Model: {model}" in body and "Fleet-Attempt: 1" in body
    merge = git(git_repo, "log", "-1", "--merges", "--format=%s", "main")
    assert merge == f"Merge fleet/{task_id}: write hello"
    stat = ok(fleet("task", task_id, "diff", "--stat")).out
    assert f" {HELLO_NAME} | +1 -0" in stat


@pytest.mark.parametrize("name", RESUMING)
def test_no_result_nudge_resumes_the_session_and_the_task_closes(
    name: str,
    fleet: Fleet,
    home: Path,
    git_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_clis(monkeypatch, name)
    if name == "gemini":
        gemini_settings(tmp_path)
    ok(fleet("config", "set", *QUICK_CONFIG, "deliver=branch"))
    with mock_for(name, Script(extra={"forget_result": True})) as mock:
        point_at(monkeypatch, name, mock, coders.get(name).key_env)
        task_id = create(fleet, "write hello", "--coder", name, "--cwd", str(git_repo))
        run_supervisor(home, "--until-idle")
        requests = len(mock.requests)
        bodies = [json.dumps(r.body) for r in mock.requests]
    task = task_of(home, task_id)
    assert task.status == "closed", (task.status_reason, task.attempts)
    first, second = task.attempts
    assert first["nudge"] == "due" and first["outcome"] == "failure" and not first["counted"]
    assert second["outcome"] == "success" and second["result_status"] == "done"
    assert second["resumed"]["kind"] == "nudge"
    assert second["resumed"]["session"] == first["session_id"]
    assert second["resumed"]["tokens_saved"] > 0
    knowledge = ok(fleet("task", task_id, "knowledge", "--attempt", "2")).out
    assert knowledge.startswith("You stopped without writing your result file")
    assert requests >= 3
    nudged = next(b for b in bodies if "You stopped without writing your result file" in b)
    assert f"# Task {task_id}: write hello" in nudged  # the session's history came along: resumed
    hello = git(git_repo, "show", f"fleet/{task_id}:{HELLO_NAME}")
    assert hello + "\n" == HELLO_TEXT  # the first turn's work, kept on the branch
    assert FINAL_TEXT  # the mock's last words end each session
