"""Budgets with real processes: a task's wall-clock budget stops its whole process tree and blocks
it; a daily token ceiling, reached by what the real claude CLI reported, holds the next task back.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.support.agent_cli import ok_script
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    agents_of,
    create,
    mock_for,
    ok,
    point_at,
    read_json,
    run_supervisor,
    task_of,
    use_clis,
)


@pytest.fixture
def work(tmp_path: Path, fleet: Fleet) -> Path:
    """A plain working directory; the fleet configured for quick runs."""
    ok(fleet("config", "set", *QUICK_CONFIG))
    path = tmp_path / "work"
    path.mkdir()
    return path


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_max_seconds_stops_the_tree_and_blocks_the_task(
    work: Path, fleet: Fleet, home: Path
) -> None:
    child = work / "child.pid"
    command = f"sleep 30 & echo $! > {child}; sleep 30"
    options = ["--coder", "shell", "--command", command, "--cwd", str(work), "--max-seconds", "1"]
    task_id = create(fleet, "sleeps", *options)
    run_supervisor(home, "--until-idle")
    task = task_of(home, task_id)
    assert task.status == "blocked"
    assert task.status_reason.startswith("budget: max_seconds 1 (used "), task.status_reason
    [attempt] = task.attempts
    assert attempt["outcome"] == "over_budget"
    assert attempt["reason"] == task.status_reason
    assert 1 < attempt["seconds"] < 20  # stopped at the limit, not when `sleep 30` would end
    assert not alive(int(child.read_text()))  # the background child went with its parent
    assert agents_of(home) == []  # nothing with the attempt's FLEET_RUN_TOKEN is left


@pytest.mark.cli
def test_a_daily_token_ceiling_holds_the_next_task_back(
    work: Path, fleet: Fleet, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_clis(monkeypatch, "claude")
    with mock_for("claude", ok_script()) as mock:
        point_at(monkeypatch, "claude", mock, "ANTHROPIC_API_KEY")
        first = create(fleet, "write hello", "--coder", "claude", "--cwd", str(work))
        run_supervisor(home, "--until-idle")
        [attempt] = task_of(home, first).attempts
        assert attempt["outcome"] == "success", attempt["reason"]
        used = sum(mock.expected_usage().values())
        assert sum(attempt["usage"][kind] for kind in mock.expected_usage()) == used
        ok(fleet("config", "set", f"daily_max_tokens={used}"))
        second = create(fleet, "write hello again", "--coder", "claude", "--cwd", str(work))
        asked = len(mock.requests)
        run_supervisor(home, "--once")
        [row] = [r for r in read_json(fleet, "tasks") if r["id"] == second]
        assert row["status"] == "open"
        assert row["why"] == f"waits: budget: the fleet's daily_max_tokens {used} are used"
        assert task_of(home, second).attempts == [] and len(mock.requests) == asked
        ok(fleet("config", "set", f"daily_max_tokens={used + 1}"))  # room again: it runs
        run_supervisor(home, "--until-idle")
    assert task_of(home, second).status == "closed"
