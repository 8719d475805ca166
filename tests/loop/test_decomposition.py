"""Subtasks listed in a result: created whole as children, run in dependency order, and the parent
closes or integrates once they all close; a bad list is refused whole and the agent is told."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor import planning
from supervisor.model import Task
from supervisor.queue.mutations import reopen
from tests.support.rig import T0, Rig


def done(summary: str = "split", subtasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"status": "done", "summary": summary, "subtasks": subtasks or []}


FIVE = [
    {"title": "schema", "coder": "scripted"},
    {"title": "api", "coder": "scripted", "deps": [0]},
    {"title": "ui", "coder": "scripted", "deps": [1]},
    {"title": "docs", "coder": "scripted", "deps": [0]},
    {"title": "release notes", "coder": "scripted", "deps": [2, 3], "acceptance": "in CHANGES"},
]


def deps_of(task: Task, kind: str) -> list[str]:
    return sorted(d.depends_on_id for d in task.dependencies if d.type == kind)


def claim(rig: Rig, task_id: str) -> None:
    """Tick until `task_id` is claimed (a dependent is claimed the tick after its blocker ends)."""
    for _ in range(3):
        rig.now += 1
        if task_id in rig.tick().claimed:
            return
    raise AssertionError(f"{task_id} was not claimed")


def run_parent(rig: Rig, subtasks: list[dict[str, Any]], **fields: Any) -> str:
    parent = rig.task("plan the feature", coder="scripted", **fields)
    assert rig.tick().claimed == [parent]
    rig.finish(parent, result=done(subtasks=subtasks))
    rig.tick()
    return parent


def test_subtasks_become_children_with_their_deps_and_the_parent_waits(rig: Rig) -> None:
    parent = run_parent(rig, FIVE)
    p = rig.get(parent)
    ids = [f"{parent}.{n}" for n in range(1, 6)]
    assert p.status == "blocked"
    assert p.waiting_on_subtasks and p.subtasks == ids
    assert p.status_reason == f"{planning.WAITING}: {', '.join(ids)}"
    assert p.closed_at == ""
    kids = [rig.get(i) for i in ids]
    assert [k.title for k in kids] == ["schema", "api", "ui", "docs", "release notes"]
    assert all(deps_of(k, "parent-child") == [parent] for k in kids)
    assert [deps_of(k, "blocks") for k in kids] == [
        [],
        [ids[0]],
        [ids[1]],
        [ids[0]],
        sorted([ids[2], ids[3]]),
    ]
    assert kids[4].acceptance_criteria == "in CHANGES"
    assert all(k.cwd == p.cwd and k.priority == p.priority for k in kids)


def test_children_run_in_dependency_order_then_the_parent_closes(rig: Rig) -> None:
    parent = run_parent(rig, FIVE)
    ids = [f"{parent}.{n}" for n in range(1, 6)]
    order: list[str] = []
    for step in range(1, 10):
        report = rig.tick(T0 + step)
        order += report.claimed
        for task_id in report.claimed:
            rig.finish(task_id, result={"status": "done", "summary": f"did {task_id}"})
        if rig.get(parent).status == "closed":
            break
    assert order[0] == ids[0]
    assert order.index(ids[1]) < order.index(ids[2]) < order.index(ids[4])
    assert order.index(ids[3]) < order.index(ids[4])
    p = rig.get(parent)
    assert (p.status, p.close_reason, p.waiting_on_subtasks) == (
        "closed",
        "its 5 subtasks closed",
        False,
    )
    assert parent not in order  # it did not run again


def test_integrate_runs_the_parent_once_more_with_its_childrens_results(rig: Rig) -> None:
    parent = run_parent(rig, FIVE[:2], after_children="integrate")
    kids = [f"{parent}.1", f"{parent}.2"]
    for kid in kids:
        claim(rig, kid)
        rig.finish(kid, result={"status": "done", "summary": f"built {kid}"})
    claim(rig, parent)
    prompt = rig.run_of(parent).argv[-1]
    assert "## What your subtasks produced" in prompt
    assert f"### {kids[0]}: schema (closed)\nbuilt {kids[0]}" in prompt
    rig.finish(parent, result={"status": "done", "summary": "integrated"})
    rig.tick()
    p = rig.get(parent)
    assert (p.status, p.close_reason) == ("closed", "integrated")


def test_the_role_decides_after_children_when_the_task_does_not(rig: Rig) -> None:
    rig.configure("roles.planner.after_children=integrate")
    parent = run_parent(rig, FIVE[:1], role="planner")
    assert rig.get(parent).after_children == "integrate"


def test_a_blocked_child_is_named_in_the_parents_reason(rig: Rig) -> None:
    parent = run_parent(rig, FIVE[:2])
    kid = f"{parent}.1"
    claim(rig, kid)
    rig.finish(kid, result={"status": "blocked", "summary": "no database"})
    rig.tick(T0 + 2)
    rig.tick(T0 + 3)
    assert rig.get(parent).status_reason == f"{planning.WAITING}: {kid} (blocked)"


@pytest.mark.parametrize(
    ("subtasks", "why"),
    [
        ([{"title": "a", "deps": [1]}, {"title": "b", "deps": [0]}], "form a cycle: 0 -> 1 -> 0"),
        ([{"title": "a", "deps": [0]}], "subtask 0 depends on itself"),
        ([{"title": "a", "deps": [3]}], "depends on subtask 3, which does not exist (indexes"),
        ([{"title": "a", "deps": ["fl-zzzz"]}], "depends on fl-zzzz, which is not in the store"),
        ([{"title": "a", "role": "nobody"}], "unknown role 'nobody'"),
        ([{"title": "a", "coder": "nosuch"}], "unknown coder 'nosuch'"),
        ([{"title": "a", "coder": "shell"}], "a shell subtask needs a command"),
        ([{"title": ""}], "subtask 0 has no title"),
        ([{"title": "two\nlines"}], "the title must be one line"),
        ([{"title": "a", "colour": "red"}], "unknown field 'colour'"),
        ([{"title": f"t{i}"} for i in range(20)], "21 subtasks are more than max_children (20)"),
        (["just a string"], "subtask 0 is not an object"),
    ],
)
def test_a_bad_list_is_refused_whole_and_the_agent_is_told(
    rig: Rig, subtasks: list[Any], why: str
) -> None:
    before = rig.store.cache.count()
    parent = run_parent(rig, [*subtasks, {"title": "fine", "coder": "scripted"}])
    p = rig.get(parent)
    assert rig.store.cache.count() == before + 1  # only the parent: no partial graph
    assert p.subtasks == [] and not p.waiting_on_subtasks
    assert p.status == "open"
    last = p.attempts[-1]
    assert last["outcome"] == "failure" and last["counted"]
    assert last["reason"].startswith("subtasks refused: ") and why in last["reason"]
    assert why in p.status_reason
    report = rig.tick(T0 + 3600)
    assert report.claimed == [parent]
    assert why in rig.run_of(parent).argv[-1]  # the next attempt's knowledge says why


def test_subtasks_past_max_depth_are_refused(rig: Rig) -> None:
    rig.configure("max_depth=1")
    parent = run_parent(rig, [{"title": "child", "coder": "scripted"}])
    kid = f"{parent}.1"
    claim(rig, kid)
    rig.finish(kid, result=done(subtasks=[{"title": "grandchild"}]))
    rig.tick(T0 + 2)
    k = rig.get(kid)
    assert "would be 2 levels deep, past max_depth (1)" in k.attempts[-1]["reason"]
    assert rig.store.cache.get(f"{kid}.1") is None


def test_a_shell_command_can_decompose_through_its_result_file(rig: Rig) -> None:
    parent = rig.task("split by script", command="true")
    assert rig.tick().claimed == [parent]
    rig.finish(
        parent, result=done(subtasks=[{"title": "echo", "coder": "shell", "command": "echo hi"}])
    )
    rig.tick()
    assert rig.get(parent).subtasks == [f"{parent}.1"]
    assert rig.get(f"{parent}.1").command == "echo hi"


def test_a_partial_result_creates_no_subtasks(rig: Rig) -> None:
    parent = rig.task("partial", coder="scripted")
    rig.tick()
    rig.finish(
        parent, result={"status": "partial", "summary": "half", "subtasks": [{"title": "x"}]}
    )
    rig.tick()
    assert rig.store.cache.get(f"{parent}.1") is None
    assert rig.get(parent).subtasks == []


def test_children_ids_skip_ids_already_taken(rig: Rig) -> None:
    parent = run_parent(rig, FIVE[:1])
    kid = f"{parent}.1"
    claim(rig, kid)
    rig.finish(kid, result={"status": "done", "summary": "ok"})
    rig.tick()
    rig.tick()
    assert rig.get(parent).status == "closed"
    reopen(rig.store, parent)
    claim(rig, parent)
    rig.finish(parent, result=done(subtasks=[{"title": "second round", "coder": "scripted"}]))
    rig.tick()
    assert rig.get(parent).subtasks == [kid, f"{parent}.2"]
