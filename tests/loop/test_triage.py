"""Routing in the loop: rules at the claim, the triage role's decision recorded with its reason, and
refinement before a role that requires it (a vague task never reaches that role)."""

from __future__ import annotations

import pytest

from tests.support.rig import Rig


@pytest.fixture
def roles(rig: Rig) -> Rig:
    rig.configure(
        "roles.developer.coder=scripted",
        "roles.docs-writer.coder=scripted",
        "roles.docs-writer.handbook=# Writes the docs\\nKeep them short.",
        "roles.developer.handbook=Builds features.",
    )
    return rig


def claimed_as(rig: Rig, task_id: str) -> tuple[str, str]:
    run = rig.get(task_id).run
    return (run.role, run.purpose) if run else ("", "")


def test_a_rule_routes_at_the_claim_and_the_decision_is_recorded(roles: Rig) -> None:
    roles.configure('route=[{role = "docs-writer", words = ["readme"]}]')
    task_id = roles.task("Fix the README", coder="")
    assert roles.tick().claimed == [task_id]
    task = roles.get(task_id)
    assert task.role == "docs-writer"
    assert task.route == {"role": "docs-writer", "by": "rule 1", "reason": "words readme"}
    assert roles.run_of(task_id).argv[0] == "scripted-agent"  # the role's coder


def test_triage_chooses_a_role_with_its_reason_then_the_role_does_the_work(roles: Rig) -> None:
    roles.configure("roles.triage.coder=scripted")
    task_id = roles.task("Something about the login page", coder="")
    assert roles.tick().claimed == [task_id]
    assert claimed_as(roles, task_id) == ("triage", "triage")
    prompt = roles.run_of(task_id).argv[-1]
    assert "## Your job: route this task" in prompt
    assert "- developer: Builds features." in prompt and "- docs-writer: Writes the docs" in prompt
    route = {"role": "developer", "reason": "it changes the login code"}
    roles.finish(task_id, result={"status": "done", "summary": "routed", "route": route})
    roles.tick()
    task = roles.get(task_id)
    assert task.status == "open" and task.role == "developer"
    assert task.route == {"role": "developer", "by": "triage", "reason": route["reason"]}
    assert task.status_reason == "routed to developer by triage: it changes the login code"
    [first] = task.attempts
    assert first["counted"] is False and first["role"] == "triage"
    report = roles.tick()
    assert report.claimed == [task_id]
    assert claimed_as(roles, task_id) == ("developer", "")
    assert "## Your job" not in roles.run_of(task_id).argv[-1]


def test_a_triage_result_naming_no_configured_role_is_a_failure_the_agent_is_told(
    roles: Rig,
) -> None:
    roles.configure("roles.triage.coder=scripted")
    task_id = roles.task("Something", coder="")
    roles.tick()
    bad = {"status": "done", "summary": "x", "route": {"role": "wizard", "reason": "magic"}}
    roles.finish(task_id, result=bad)
    roles.tick()
    task = roles.get(task_id)
    assert task.role == "" and task.route is None
    reason = task.attempts[-1]["reason"]
    assert (
        reason
        == "triage: role 'wizard' is not one of the configured roles (developer, docs-writer)"
    )
    roles.tick(roles.now + 3600)
    assert reason in roles.run_of(task_id).argv[-1]


def test_a_vague_task_never_reaches_the_developer_while_its_role_requires_refinement(
    roles: Rig,
) -> None:
    roles.configure('roles.developer.ready_when=["acceptance", "estimate"]')
    task_id = roles.task("Make login faster", coder="", role="developer")
    for _ in range(3):
        roles.tick(roles.now + 60)
    assert roles.runs_of(task_id) == []  # no refiner: it waits, and says why
    assert "needs refinement (acceptance, estimate)" in roles.sup.waiting[task_id]
    roles.configure("roles.product-owner.coder=scripted")
    assert roles.tick(roles.now + 60).claimed == [task_id]
    assert claimed_as(roles, task_id) == ("product-owner", "refine")
    prompt = roles.run_of(task_id).argv[-1]
    assert "## Your job: refine this task before work starts" in prompt
    assert "It lacks: acceptance, estimate." in prompt
    half = {"status": "done", "summary": "x", "refined": {"acceptance": "p95 < 200 ms"}}
    roles.finish(task_id, result=half)
    roles.tick(roles.now + 1)
    assert roles.get(task_id).attempts[-1]["reason"] == (
        "refine: the refined task still lacks estimate"
    )
    assert roles.get(task_id).acceptance_criteria == ""  # nothing of a refused result is kept
    roles.tick(roles.now + 3600)
    assert claimed_as(roles, task_id) == ("product-owner", "refine")
    full = {
        "status": "done",
        "summary": "refined",
        "refined": {
            "description": "Login takes 2 s.",
            "acceptance": "p95 < 200 ms",
            "estimate_minutes": 120,
        },
    }
    roles.finish(task_id, result=full)
    roles.tick(roles.now + 1)
    task = roles.get(task_id)
    assert (task.description, task.acceptance_criteria) == ("Login takes 2 s.", "p95 < 200 ms")
    assert task.extra["estimated_minutes"] == 120 and "refined" in task.labels
    assert task.status == "open"
    roles.tick(roles.now + 1)
    assert claimed_as(roles, task_id) == ("developer", "")
    roles_of_runs = [a.get("role") for a in roles.get(task_id).attempts]
    assert roles_of_runs == ["product-owner", "product-owner"]
