"""Conformance: each agent coder's REAL CLI, run by the supervisor (a real `fleet supervisor`
process) against fleet's mock model server, end to end.

With no account configured, the agents get the supervisor's own variables, so each test points
its coder at the mock through the test's environment. A task runs to the end: the CLI writes
`hello.txt` in the task's working directory (its worktree on `fleet/<id>` inside a repository),
the attempt's usage is the mock's to the token, and `fleet task ID ...` shows the log, plan,
knowledge, result and usage. Then each way a model server refuses becomes its outcome class, and a
reset time the CLI reports becomes the task's `not_before`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import coders
from coders.base import first_plan_text
from coders.check.mock.base import (
    FINAL_TEXT,
    HELLO_NAME,
    HELLO_TEXT,
    PLAN_TEXT,
    Script,
    result_json,
)
from supervisor import budgets
from supervisor.model import Task, parse_time
from supervisor.run.knowledge import RESULT_SHAPE
from tests.support.agent_cli import ok_script
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    create,
    ended,
    mock_for,
    ok,
    point_at,
    read_json,
    run_supervisor,
    supervise_until,
    task_of,
    use_clis,
)

pytestmark = pytest.mark.cli

# Where each coder's task runs: a git repository (a worktree) or a plain directory. Codex is the
# one in a plain directory: `--skip-git-repo-check` is what lets it run there.
PLACES = {"claude": "repo", "codex": "plain", "gemini": "repo", "opencode": "repo"}
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
OUTCOMES = {
    "rate_limit": "rate_limited",
    "usage_limit": "rate_limited",
    "auth": "auth_error",
    "overloaded": "overloaded",
}
# (coder, mode) -> how close to the mock's reset time the reported one is, in seconds. Codex
# states the reset to the minute ("try again at 3:17 PM"), which fleet reads as that minute's end.
RESETS = {
    ("claude", "usage_limit"): (0, 1),
    ("opencode", "usage_limit"): (0, 1),
    ("gemini", "rate_limit"): (-2, 2),
    ("codex", "usage_limit"): (0, 61),
}
BACKOFF = 30.0  # QUICK_CONFIG's backoff_seconds: the first retry waits 0.5 to 1 times this


@pytest.fixture
def quick(fleet: Fleet) -> None:
    ok(fleet("config", "set", *QUICK_CONFIG))


def key_env(name: str, mode: str) -> str:
    """The variable of the dummy key: Claude shows usage limits only with OAuth."""
    coder = coders.get(name)
    if mode == "usage_limit" and coder.usage_limit_key_env:
        return coder.usage_limit_key_env
    return coder.key_env


def user_settings(name: str, home: Path) -> None:
    """What a user who points Gemini CLI at a gateway has in `~/.gemini/settings.json`: the API-key
    auth type (the base URL alone picks `gateway`, which headless mode refuses) and one attempt
    per request. With no account, the agent uses the user's own Gemini settings."""
    if name != "gemini":
        return
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"maxAttempts": 1},
    }
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))


def user_home(tmp_path: Path) -> Path:
    return tmp_path / "user-home"  # conftest's HOME


def plain_dir(tmp_path: Path) -> Path:
    plain = tmp_path / "plain"
    plain.mkdir()
    return plain


def branch_of(workdir: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(workdir), "rev-parse", "--abbrev-ref", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def reported_cost(name: str, raw: str) -> float | None:
    """The cost the CLI itself printed for the run (None: it prints none)."""
    lines = [json.loads(line) for line in raw.splitlines()]
    if name == "claude":
        return float(next(x["total_cost_usd"] for x in lines if x.get("type") == "result"))
    if name == "opencode":
        steps = [x["part"] for x in lines if x.get("type") == "step_finish"]
        return sum(float(part["cost"]) for part in steps)
    return None


def priced(usage: dict[str, Any]) -> float:
    """The usage's cost at fleet's list prices for its model, per million tokens."""
    price = budgets.price_of(usage["model"], {})
    assert price is not None, usage["model"]
    kinds = {"input": "input_tokens", "output": "output_tokens"}
    kinds |= {"cache_read": "cache_read_tokens", "cache_write": "cache_write_tokens"}
    return float(sum(usage[tokens] * price[kind] for kind, tokens in kinds.items())) / 1e6


# -- a task to the end -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PLACES))
def test_a_task_runs_to_the_end_through_the_real_cli(
    name: str,
    quick: None,
    fleet: Fleet,
    home: Path,
    git_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_clis(monkeypatch, name)
    user_settings(name, user_home(tmp_path))
    cwd = git_repo if PLACES[name] == "repo" else plain_dir(tmp_path)
    with mock_for(name, ok_script()) as mock:
        point_at(monkeypatch, name, mock, key_env(name, "ok"))
        task_id = create(fleet, "write hello", "--coder", name, "--cwd", str(cwd))
        run_supervisor(home, "--until-idle")
        want = mock.expected_usage()
        first = mock.requests[0]
    task = task_of(home, task_id)
    assert task.status == "closed", task.status_reason
    [attempt] = task.attempts
    assert attempt["outcome"] == "success" and attempt["coder"] == name
    asked = first.path + json.dumps(first.body)  # the model is in the body, or Gemini's path
    assert attempt["model"] and attempt["model"].split("/")[-1] in asked
    workdir = Path(attempt["workdir"])
    if PLACES[name] == "repo":  # worked in its worktree on fleet/<id>, merged, then pruned
        assert workdir.parent.parent == home / "worktrees" and workdir.name == task_id
        assert attempt["work"]["branch"] == f"fleet/{task_id}"
        assert task.delivery and task.delivery["state"] == "merged" and task.delivery["pruned"]
        assert not workdir.exists()
        assert (git_repo / HELLO_NAME).read_text() == HELLO_TEXT
    else:
        assert workdir == cwd
        assert (workdir / HELLO_NAME).read_text() == HELLO_TEXT
    assert want["input_tokens"] > 0
    assert {kind: attempt["usage"][kind] for kind in want} == want
    raw = json.loads(ok(fleet("task", task_id, "log", "--raw", "--json")).out)["log"]
    assert_cost(name, attempt, raw)
    assert_views(fleet, task_id, attempt, raw, home)


def assert_cost(name: str, attempt: dict[str, Any], raw: str) -> None:
    """The CLI's own cost where it reports one, else fleet's list price for the tokens."""
    cost = reported_cost(name, raw)
    if cost is not None:
        assert cost > 0
        assert attempt["cost_source"] == "cli"
    else:
        assert attempt["cost_source"] == "prices"
        cost = priced(attempt["usage"])
    assert attempt["usage"]["cost_usd"] == pytest.approx(cost, rel=1e-9)


def assert_views(fleet: Fleet, task_id: str, attempt: dict[str, Any], raw: str, home: Path) -> None:
    """What `fleet task ID log|plan|knowledge|result|usage` print for the attempt."""
    raw_lines = raw.splitlines()
    assert len(raw_lines) == attempt["lines"]
    assert all(isinstance(json.loads(line), dict) for line in raw_lines)
    log = ok(fleet("task", task_id, "log")).out
    assert f"[session] {attempt['session_id']}" in log
    assert "1. Write hello.txt" in log and FINAL_TEXT in log
    tools = [line for line in log.splitlines() if " [tool] " in line]
    assert len(tools) == 2 and HELLO_NAME in tools[0] and "result.json" in tools[1]
    assert ok(fleet("task", task_id, "plan")).out == first_plan_text(PLAN_TEXT, False) + "\n"
    knowledge = ok(fleet("task", task_id, "knowledge")).out
    assert knowledge.startswith(f"# Task {task_id}: write hello\n")
    assert f"Working directory: {attempt['workdir']}\n" in knowledge
    assert RESULT_SHAPE in knowledge
    result_file = home / "live" / task_id / "1" / "result.json"
    assert knowledge.endswith(f"Write your result as JSON to: {result_file}\n")
    assert json.loads(ok(fleet("task", task_id, "result")).out) == json.loads(result_json())
    usage = read_json(fleet, "task", task_id, "usage")
    totals = {kind: attempt["usage"][kind] for kind in TOKEN_KINDS}
    cost = round(attempt["usage"]["cost_usd"], 6)
    assert usage["total"] == totals | {"cost_usd": cost, "seconds": attempt["seconds"]}
    assert [(a["n"], a["outcome"]) for a in usage["attempts"]] == [(1, "success")]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(OUTCOMES))
@pytest.mark.parametrize("name", list(PLACES))
def test_a_refusal_becomes_its_outcome_class(
    name: str,
    mode: str,
    quick: None,
    fleet: Fleet,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_clis(monkeypatch, name)
    user_settings(name, user_home(tmp_path))
    cwd = plain_dir(tmp_path)
    resets_at = int(time.time()) + 3600
    with mock_for(name, Script(mode=mode, resets_at=resets_at)) as mock:
        point_at(monkeypatch, name, mock, key_env(name, mode))
        task_id = create(
            fleet, "write hello", "--coder", name, "--cwd", str(cwd), "--max-attempts", "1"
        )
        task = supervise_until(home, lambda: ended(home, task_id), f"{task_id}'s attempt")
    [attempt] = task.attempts
    assert attempt["outcome"] == OUTCOMES[mode], attempt["reason"]
    assert attempt["counted"] == (mode == "auth")
    assert not (cwd / HELLO_NAME).exists()
    if mode == "auth":  # a failed try, and the only one allowed
        assert task.status == "blocked"
        assert task.status_reason.startswith("failed 1 attempts; the last: auth_error: ")
        return
    assert task.status == "open"
    assert_waits(task, attempt, RESETS.get((name, mode)), resets_at)


def assert_waits(
    task: Task, attempt: dict[str, Any], slack: tuple[int, int] | None, resets_at: int
) -> None:
    """The task waits for the reset the CLI reported, else for a backoff."""
    not_before = parse_time(task.not_before)
    if slack is None:
        assert attempt["resets_at"] == ""
        waited = not_before - parse_time(attempt["ended_at"])
        assert BACKOFF / 2 <= waited <= BACKOFF
        return
    low, high = slack
    assert resets_at + low <= parse_time(attempt["resets_at"]) <= resets_at + high
    assert task.not_before == attempt["resets_at"]
