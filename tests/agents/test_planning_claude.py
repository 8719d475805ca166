"""Planning end to end with the real `claude` CLI against the mock model server: a spec goes to the
planner role, which splits it into five subtasks with dependencies; they run in dependency order;
the planner runs once more to integrate their work; the plan closes; the store's log tells it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coders.check.mock.base import Script
from supervisor.model import parse_time
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    mock_for,
    ok,
    point_at,
    run_supervisor,
    task_of,
    use_clis,
)

SPEC = """# Release notes page

Add a page that lists the release notes, newest first, with a search box.
"""
FIVE = [
    {"title": "schema for notes", "coder": "claude", "acceptance": "a table exists"},
    {"title": "api for notes", "coder": "claude", "deps": [0]},
    {"title": "page for notes", "coder": "claude", "deps": [1]},
    {"title": "search box", "coder": "claude", "deps": [2]},
    {"title": "docs for notes", "coder": "claude", "deps": [0]},
]
SCRIPT = Script(
    results=[
        ("## What your subtasks produced", {"status": "done", "summary": "integrated the page"}),
        (r"# Task \S+: Plan: ", {"status": "done", "summary": "split it", "subtasks": FIVE}),
    ]
)


def started(attempt: dict[str, Any]) -> float:
    return parse_time(attempt["started_at"])


def test_a_spec_is_planned_run_in_order_and_integrated(
    fleet: Fleet, home: Path, git_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_clis(monkeypatch, "claude")
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    ok(fleet("config", "set", *QUICK_CONFIG, "roles.planner.coder=claude", "max_concurrent=3"))
    with mock_for("claude", SCRIPT) as mock:
        point_at(monkeypatch, "claude", mock, "ANTHROPIC_API_KEY")
        plan_id = ok(fleet("plan", str(spec), "--cwd", str(git_repo))).out.strip()
        for _ in range(8):  # each run goes until nothing is ready: children, then the parent
            run_supervisor(home, "--until-idle")
            if task_of(home, plan_id).status == "closed":
                break
    plan = task_of(home, plan_id)
    kids = [task_of(home, f"{plan_id}.{n}") for n in range(1, 6)]
    assert plan.status == "closed" and plan.close_reason == "integrated the page"
    assert plan.subtasks == [k.id for k in kids]
    assert [a["outcome"] for a in plan.attempts] == ["success", "success"]
    assert all(k.status == "closed" and len(k.attempts) == 1 for k in kids)
    begin = [started(k.attempts[0]) for k in kids]
    end = [parse_time(k.attempts[0]["ended_at"]) for k in kids]
    for child, blocker in [(1, 0), (2, 1), (3, 2), (4, 0)]:
        assert begin[child] >= end[blocker], (kids[child].id, kids[blocker].id)
    assert started(plan.attempts[1]) >= max(end)
    knowledge = ok(fleet("task", plan_id, "knowledge", "--attempt", "2")).out
    assert "## What your subtasks produced" in knowledge
    assert f"### {kids[3].id}: search box (closed)" in knowledge
    log = json.loads(ok(fleet("log", "--json", "-n", "0")).out)
    story = [(str(e["event"]), list(e["tasks"])) for e in reversed(log)]

    def first(event: str, *ids: str, after: int = -1) -> int:
        return next(
            i
            for i, (ev, tasks) in enumerate(story)
            if i > after and event in ev and set(ids) <= set(tasks)
        )

    created = first("created", plan_id)
    split = first("success", plan_id, kids[0].id, kids[4].id)  # the record and the subtasks
    kid_ends = [first("success", k.id, after=split) for k in kids]
    integrate = first("integrate", plan_id)
    closed = max(i for i, (ev, tasks) in enumerate(story) if "success" in ev and plan_id in tasks)
    assert created < first("claimed", plan_id) < split < min(kid_ends)
    assert max(kid_ends) <= integrate < closed
