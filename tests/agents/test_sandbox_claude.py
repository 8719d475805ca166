"""The sandbox with the real claude CLI against the mock model: the model has the agent write,
with its Bash tool, to $HOME, to /tmp, to another task's worktree and to the repository itself;
every write fails inside bubblewrap, and the agent still does its job in its own worktree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coders.check.mock import anthropic as mock_anthropic
from coders.check.mock.base import FINAL_TEXT, HELLO_NAME, HELLO_TEXT, Script, Step, result_json
from tests.support.agent_cli import ok_script
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

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


@pytest.mark.cli
def test_claude_in_the_sandbox_cannot_write_outside_its_worktree(
    fleet: Fleet,
    home: Path,
    git_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok(fleet("config", "set", *QUICK_CONFIG))
    first = create(fleet, "first", "--coder", "shell", "--command", "true", "--cwd", str(git_repo))
    run_supervisor(home, "--until-idle")
    other = Path(task_of(home, first).attempts[0]["workdir"])
    targets = [
        tmp_path / "user-home" / "escape-claude",
        Path("/tmp") / f"fleet-escape-claude-{tmp_path.name}",
        other / "escape-claude",
        git_repo / "escape-claude",
    ]

    def steps(script: Script, done: int, workdir: str, result: str, prompt: str = "") -> Step:
        if done < len(targets):  # one escape per turn, through the Bash tool
            return Step(f"trying {targets[done]}", str(targets[done]), "x", "shell")
        if done == len(targets):
            return Step("now my own work", f"{workdir}/{HELLO_NAME}", HELLO_TEXT, "shell")
        if done == len(targets) + 1 and result:
            return Step("", result, result_json() + "\n", "shell")
        return Step(FINAL_TEXT)

    monkeypatch.setattr(mock_anthropic, "script_step", steps)
    use_clis(monkeypatch, "claude")
    config_dir = tmp_path / "claude-account"
    with mock_for("claude", ok_script()) as mock:
        point_at(monkeypatch, "claude", mock, "SANDBOX_KEY")
        settings = [
            "accounts.boxed.coder=claude",
            "accounts.boxed.key_env=SANDBOX_KEY",
            f"accounts.boxed.config_dir={config_dir}",
            'sandbox_roles=["builder"]',
            "roles.builder.coder=claude",
            "deliver=branch",  # the worktree stays for the test to look into
        ]
        ok(fleet("config", "set", *settings))
        task_id = create(
            fleet, "write hello", "--coder", "claude", "--account", "boxed", "--role", "builder",
            "--cwd", str(git_repo),
        )  # fmt: skip
        run_supervisor(home, "--until-idle")
        answered = [r for r in mock.requests if r.method == "POST"]
    task = task_of(home, task_id)
    [attempt] = task.attempts
    assert attempt["outcome"] == "success", attempt["reason"]
    workdir = Path(attempt["workdir"])
    assert (workdir / HELLO_NAME).read_text() == HELLO_TEXT
    for target in targets:
        assert not target.exists(), target
    tool_results = str([r.body for r in answered])
    assert tool_results.count("Read-only file system") >= len(targets)
    assert any(config_dir.iterdir())  # its own config dir was writable
