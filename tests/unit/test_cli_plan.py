"""`fleet plan` and `fleet route` as a user runs them: a reviewed graph queued whole or refused
whole, a dry run that queues nothing, the route explained, and `bd ready` naming refinement."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor.store.store import Store
from tests.support.store_checks import head

SPEC = "# Search page\n\nA page that searches the notes.\n"
GRAPH = {
    "subtasks": [
        {"title": "index", "coder": "shell", "command": "true"},
        {"title": "page", "coder": "shell", "command": "true", "deps": [0]},
    ]
}


def ok(fleet: Any, *args: str) -> Any:
    result = fleet(*args)
    assert result.code == 0, result.err
    return result


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.md"
    path.write_text(SPEC)
    return path


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(data))
    return path


def test_a_reviewed_graph_is_queued_whole_and_the_plan_waits(
    fleet: Any, spec: Path, tmp_path: Path, store: Store
) -> None:
    out = json.loads(
        ok(fleet, "plan", str(spec), "--subtasks", str(write(tmp_path, GRAPH)), "--json").out
    )
    parent = out["parent"]
    assert [s["id"] for s in out["subtasks"]] == [f"{parent}.1", f"{parent}.2"]
    plan = store.get(parent)
    assert plan.title == "Plan: Search page" and plan.description == SPEC
    assert plan.status == "blocked" and plan.waiting_on_subtasks
    page = store.get(f"{parent}.2")
    assert [(d.type, d.depends_on_id) for d in page.dependencies] == [
        ("parent-child", parent),
        ("blocks", f"{parent}.1"),
    ]
    shown = ok(fleet, "bd", "show", parent).out
    assert f"subtasks: {parent}.1, {parent}.2 (waits for them)" in shown


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (
            {"subtasks": [{"title": "a", "deps": [1]}, {"title": "b", "deps": [0]}]},
            "cycle: 0 -> 1 -> 0",
        ),
        ({"subtasks": [{"title": "a", "deps": [7]}]}, "depends on subtask 7, which does not exist"),
        ({"subtasks": []}, "the task graph has no subtasks"),
    ],
)
def test_a_bad_graph_is_refused_whole_and_the_store_is_unchanged(
    fleet: Any, spec: Path, tmp_path: Path, home: Path, graph: object, message: str
) -> None:
    ok(fleet, "bd", "create", "something else")
    before = head(home)
    result = fleet("plan", str(spec), "--subtasks", str(write(tmp_path, graph)))
    assert result.code == 2
    assert message in result.err and result.err.count("\n") <= 2
    assert head(home) == before


def test_planning_needs_a_planner_role(fleet: Any, spec: Path, home: Path) -> None:
    ok(fleet, "bd", "list")
    before = head(home)
    result = fleet("plan", str(spec))
    assert result.code == 2
    assert result.err.splitlines() == [
        "fleet: no role 'planner' is configured to plan",
        "  hint: fleet roles add planner --from planner (then `fleet roles set planner coder=...`)",
    ]
    assert head(home) == before


def test_plan_queues_the_planning_task_for_the_planner(
    fleet: Any, spec: Path, store: Store
) -> None:
    ok(fleet, "config", "set", "roles.planner.coder=shell")
    task_id = ok(fleet, "plan", str(spec)).out.strip()
    task = store.get(task_id)
    assert (task.role, task.after_children, task.labels) == ("planner", "integrate", ["plan"])


def test_a_dry_run_runs_the_planner_and_queues_nothing(
    fleet: Any, spec: Path, tmp_path: Path, home: Path, git_repo: Path
) -> None:
    script = tmp_path / "planner.sh"
    result = json.dumps({"status": "done", "summary": "split", **GRAPH})
    script.write_text(f"cat > \"$FLEET_RESULT_FILE\" <<'EOF'\n{result}\nEOF\n")
    ok(fleet, "config", "set", "roles.planner.coder=shell")
    ok(fleet, "bd", "list")
    before = head(home)
    branches = subprocess.run(
        ["git", "-C", str(git_repo), "branch", "--list"], capture_output=True, text=True
    ).stdout
    out = ok(
        fleet,
        "plan",
        str(spec),
        "--dry-run",
        "--json",
        "--cwd",
        str(git_repo),
        "--command",
        f"sh {script}",
    ).out
    assert json.loads(out) == {
        "subtasks": [
            {"title": "index", "coder": "shell", "command": "true", "deps": []},
            {"title": "page", "coder": "shell", "command": "true", "deps": [0]},
        ]
    }
    assert head(home) == before  # nothing queued
    after = subprocess.run(
        ["git", "-C", str(git_repo), "branch", "--list"], capture_output=True, text=True
    ).stdout
    assert after == branches  # the planner ran in a scratch clone: no branch left behind
    shown = ok(
        fleet, "plan", str(spec), "--dry-run", "--cwd", str(git_repo), "--command", f"sh {script}"
    )
    assert shown.out.splitlines() == ["  0  [shell] index", "  1  [shell] page  after 0"]


def test_a_dry_run_whose_planner_proposes_nothing_says_why(
    fleet: Any, spec: Path, home: Path, tmp_path: Path
) -> None:
    ok(fleet, "config", "set", "roles.planner.coder=shell")
    result = fleet("plan", str(spec), "--dry-run", "--cwd", str(tmp_path), "--command", "exit 3")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "fleet: the planner proposed no subtasks: the command exited with 3"
    )


def test_route_explains_and_then_routes(fleet: Any, store: Store) -> None:
    ok(fleet, "config", "set", "roles.docs-writer.coder=shell")
    ok(fleet, "config", "set", 'route=[{role = "docs-writer", labels = ["docs"]}]')
    task_id = ok(fleet, "bd", "create", "Explain the cache", "-l", "docs").out.strip()
    explained = ok(fleet, "route", task_id, "--explain").out.splitlines()
    assert explained == ["rule 1 (labels docs) -> docs-writer: matches"]
    assert store.get(task_id).role == ""
    assert ok(fleet, "route", task_id).out.strip() == (
        f"{task_id} -> docs-writer (rule 1: labels docs)"
    )
    task = store.get(task_id)
    assert task.role == "docs-writer" and task.route == {
        "role": "docs-writer",
        "by": "rule 1",
        "reason": "labels docs",
    }
    data = json.loads(ok(fleet, "route", task_id, "--explain", "--json").out)
    assert data["role"] == "docs-writer" and data["route"]["by"] == "rule 1"


def test_bd_ready_names_the_tasks_that_need_refinement(fleet: Any) -> None:
    ok(fleet, "config", "set", 'roles.developer.ready_when=["acceptance"]')
    vague = ok(fleet, "bd", "create", "Make it fast", "--role", "developer").out.strip()
    clear = ok(
        fleet, "bd", "create", "Make it fast", "--role", "developer", "--acceptance", "p95 < 1 s"
    ).out.strip()
    rows = {r["id"]: r for r in json.loads(ok(fleet, "bd", "ready", "--json").out)}
    assert rows[vague]["needs_refinement"] == ["acceptance"]
    assert "needs_refinement" not in rows[clear]
    text = ok(fleet, "bd", "ready").out
    assert any(vague in line and "needs refinement" in line for line in text.splitlines())
