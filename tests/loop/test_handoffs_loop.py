"""Roles, reactions and gates in the supervisor's tick, with a fake clock and fake agents.

A developer task closes, its review task is created with the diff in its knowledge, a verdict
reopens the developer task or approves its work, the loop guard stops a ping-pong, a reviewer
with the author's identity is refused, and a cycle of rules stops at `max_chain`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor import gates, roles
from supervisor.events import Event
from supervisor.model import Task
from supervisor.queue import approvals, configure, pipelines
from supervisor.queue import roles as roles_store
from supervisor.store import feed
from tests.support import scripted_coder
from tests.support.rig import Rig

DEV_RESULT = {"status": "done", "summary": "Added feature.txt with the greeting."}


def verdict(kind: str, *comments: str) -> dict[str, Any]:
    return {
        "status": "done",
        "summary": f"review: {kind}",
        "verdict": kind,
        "comments": list(comments),
    }


@pytest.fixture
def pipeline(rig: Rig, git_repo: Path) -> Rig:
    """The review pipeline, developer and reviewer on the scripted coder with two models, tasks
    in worktrees of a real repository."""
    rig.configure("isolation=worktree")
    pipelines.install(rig.store, "review")
    roles_store.set_values(rig.store, "developer", [f"coder={scripted_coder.NAME}", "model=dev-1"])
    roles_store.set_values(rig.store, "reviewer", [f"coder={scripted_coder.NAME}", "model=rev-1"])
    rig.work = git_repo
    return rig


def step(rig: Rig) -> None:
    """Two ticks: what ended is recorded and reacted to, then what that made is started."""
    rig.tick(rig.now + 1)
    rig.tick(rig.now + 1)


def story(rig: Rig, task_ids: set[str]) -> list[tuple[str, str]]:
    return [(e.type, e.task) for e in feed.read(rig.store) if e.task in task_ids]


def reviews_of(rig: Rig, task_id: str) -> list[Task]:
    found = []
    for body in rig.store.cache.select(None):
        task = Task.from_dict(body)
        origin = task.extra.get("origin")
        if isinstance(origin, dict) and origin.get("task") == task_id:
            found.append(task)
    return sorted(found, key=lambda t: t.created_at)


def test_each_template_reaches_the_agents_knowledge(rig: Rig) -> None:
    rig.configure("max_concurrent=10")
    for name in roles.TEMPLATES:
        roles_store.add(rig.store, name)
    ids = {name: rig.task(f"work as {name}", role=name) for name in roles.TEMPLATES}
    rig.tick(rig.now + 1)
    rig.finish_all()
    rig.tick(rig.now + 1)
    for name, task_id in ids.items():
        knowledge = (rig.committed(task_id, 1, "knowledge.md") or b"").decode()
        handbook = roles.parse(name, roles.template(name)).handbook
        assert f"## Your role: {name}" in knowledge
        assert handbook.strip() in knowledge, name


def test_a_config_role_table_still_works_and_a_role_file_overrides_it(rig: Rig) -> None:
    rig.configure("roles.old.handbook=Be careful.", "roles.old.max_cost=2.5")
    task_id = rig.task("old style", role="old")
    rig.tick(rig.now + 1)
    rig.finish_all()
    rig.tick(rig.now + 1)
    assert "Be careful." in (rig.committed(task_id, 1, "knowledge.md") or b"").decode()
    roles_store.set_values(rig.store, "old", ["handbook=The file's text."])
    role = roles_store.get(rig.store, "old")
    assert role.source == "both"
    assert role.handbook == "The file's text."
    assert role.settings.max_cost == 2.5  # filled in from the table


def test_a_role_caps_its_agents(rig: Rig) -> None:
    roles_store.add(rig.store, "tester")
    roles_store.set_values(rig.store, "tester", ["max_concurrent=1"])
    first, second = rig.task("a", role="tester"), rig.task("b", role="tester")
    report = rig.tick(rig.now + 1)
    assert len(report.claimed) == 1
    rig.finish_all()
    rig.tick(rig.now + 1)
    assert {first, second} <= {t for r in rig.reports for t in r.claimed}


def test_review_pipeline_changes_requested_then_approved(pipeline: Rig) -> None:
    rig = pipeline
    dev = rig.task("Add a greeting", role="developer", coder="", cwd=str(rig.work))
    rig.tick(rig.now + 1)
    (rig.run_of(dev).cwd / "feature.txt").write_text("hello\n")
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    assert rig.get(dev).status == "closed"
    assert not gates.may_deliver(rig.get(dev), gates.approvals(rig.get(dev)), _config(rig))
    [review] = reviews_of(rig, dev)
    assert review.role == "reviewer"
    knowledge = Path(rig.run_of(review.id).env["FLEET_RESULT_FILE"]).parent / "knowledge.md"
    text = knowledge.read_text()
    assert "+hello" in text and "feature.txt" in text  # the developer's diff
    assert DEV_RESULT["summary"] in text
    assert "## Your role: reviewer" in text

    rig.finish(review.id, result=verdict("changes_requested", "feature.txt:1: say hello world"))
    step(rig)
    task = rig.get(dev)
    assert task.status == "in_progress"  # reopened and started again, on the same branch
    knowledge = Path(rig.run_of(dev).env["FLEET_RESULT_FILE"]).parent / "knowledge.md"
    assert "feature.txt:1: say hello world" in knowledge.read_text()
    assert rig.run_of(dev).cwd == rig.runs_of(dev)[0].cwd

    (rig.run_of(dev).cwd / "feature.txt").write_text("hello world\n")
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    second = reviews_of(rig, dev)[-1]
    assert second.id != review.id
    rig.finish(second.id, result=verdict("approved"))
    step(rig)
    step(rig)
    task = rig.get(dev)
    verdict_now = gates.may_deliver(task, gates.approvals(task), _config(rig))
    assert verdict_now.waiting_for == ["human"]
    approvals.approve(rig.store, dev, "ship it", actor="alice@host")
    task = rig.get(dev)
    assert gates.may_deliver(task, gates.approvals(task), _config(rig)).ok
    told = story(rig, {dev, review.id, second.id})
    expected = [
        ("task.created", dev),
        ("task.claimed", dev),
        ("attempt.ended", dev),
        ("task.closed", dev),
        ("gate.waiting", dev),
        ("task.created", review.id),
        ("review.verdict", review.id),
        ("task.reopened", dev),
        ("task.closed", dev),
        ("task.created", second.id),
        ("review.verdict", second.id),
        ("gate.approved", dev),
        ("gate.approved", dev),
        ("gate.open", dev),
    ]
    assert [e for e in told if e in expected] == _in_order(told, expected)


def _in_order(told: list[tuple[str, str]], expected: list[tuple[str, str]]) -> list[Any]:
    """`expected`, checked to appear in `told` in this order (other events in between)."""
    position = 0
    for item in expected:
        position = told.index(item, position) + 1
    return [e for e in told if e in expected]


def _config(rig: Rig) -> Any:
    return roles_store.effective_config(rig.store)


def test_loop_guard_stops_a_review_ping_pong(pipeline: Rig) -> None:
    rig = pipeline
    dev = rig.task("Never good enough", role="developer", coder="", cwd=str(rig.work))
    for _ in range(6):
        rig.tick(rig.now + 1)
        task = rig.get(dev)
        if task.status == "blocked":
            break
        if task.status == "in_progress":
            rig.finish(dev, result=DEV_RESULT)
            step(rig)
        review = reviews_of(rig, dev)[-1] if reviews_of(rig, dev) else None
        if review is not None and review.status == "in_progress":
            rig.finish(review.id, result=verdict("changes_requested", "again"))
            step(rig)
    task = rig.get(dev)
    assert task.status == "blocked"
    assert "loop guard: reopened 3 times" in task.status_reason
    assert "loop.blocked" in [e.type for e in feed.read(rig.store) if e.task == dev]


def test_a_reviewer_with_the_authors_identity_is_refused(pipeline: Rig) -> None:
    rig = pipeline
    roles_store.set_values(rig.store, "reviewer", ["model=dev-1"])  # the developer's model
    dev = rig.task("Self review", role="developer", coder="", cwd=str(rig.work))
    rig.tick(rig.now + 1)
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    [review] = reviews_of(rig, dev)
    assert review.status == "blocked"
    assert "refused: the reviewer would have the author's identity" in review.status_reason
    refused = [e for e in feed.read(rig.store) if e.type == "review.refused"]
    assert refused and refused[0].data["for"] == dev


def test_a_reviewer_gets_another_account_than_the_author(pipeline: Rig) -> None:
    rig = pipeline
    for name in ("one", "two"):
        configure.set_values(rig.store, [f"accounts.{name}.coder={scripted_coder.NAME}"])
    roles_store.set_values(rig.store, "reviewer", ["model=dev-1"])
    roles_store.set_values(rig.store, "developer", ["account=one"])
    dev = rig.task("Review me elsewhere", role="developer", coder="", cwd=str(rig.work))
    rig.tick(rig.now + 1)
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    [review] = reviews_of(rig, dev)
    assert review.status == "in_progress"
    assert review.account == "two"


def test_an_agent_cannot_approve_its_own_work(pipeline: Rig) -> None:
    rig = pipeline
    dev = rig.task("Mine", role="developer", coder="", cwd=str(rig.work))
    rig.tick(rig.now + 1)
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    with pytest.raises(Exception, match="cannot approve its own work"):
        approvals.approve(rig.store, dev, agent=dev)
    recorded = gates.approvals(rig.get(dev))
    assert recorded[-1]["verdict"] == "refused"  # the refusal is recorded


def test_a_cycle_of_rules_stops_at_max_chain(rig: Rig, tmp_path: Path) -> None:
    text = (
        'coder = "shell"\nisolation = "none"\nmax_chain = 3\npaused = true\n\n'
        '[[on]]\nevent = "task.created"\n'
        'create = { title = "again after {task.id}" }\n'
    )
    pipelines.load_config(rig.store, text)
    first = rig.task("seed")
    for _ in range(8):
        rig.tick(rig.now + 1)
    made = [Task.from_dict(b) for b in rig.store.cache.select(None)]
    assert len(made) == 4  # the seed and a chain of 3
    guarded = [t for t in made if "max_chain = 3" in t.status_reason]
    assert len(guarded) == 1 and guarded[0].status == "blocked"
    assert [e.type for e in feed.read(rig.store)].count("loop.blocked") == 1
    assert first in {t.id for t in made}


def test_a_rule_runs_a_command_once(rig: Rig, tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    text = (
        'coder = "shell"\nisolation = "none"\n\n'
        '[[on]]\nevent = "task.closed"\n'
        f'run = "echo {{task.id}} $FLEET_EVENT_TYPE >> {out}"\n'
    )
    pipelines.load_config(rig.store, text)
    task_id = rig.task("closes")
    rig.tick(rig.now + 1)
    rig.finish_all()
    rig.tick(rig.now + 1)
    rig.tick(rig.now + 1)
    from tests.support.waiting import wait_for

    wait_for(lambda: out.exists() and out.read_text().strip(), 10, "the rule's command")
    assert out.read_text().split() == [task_id, "task.closed"]


def test_human_reject_reopens_with_the_reason(pipeline: Rig) -> None:
    rig = pipeline
    dev = rig.task("Rejected", role="developer", coder="", cwd=str(rig.work))
    rig.tick(rig.now + 1)
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    approvals.reject(rig.store, dev, "wrong approach", actor="bob@host")
    task = rig.get(dev)
    assert task.status == "open" and task.extra["handoff"]["summary"] == "wrong approach"
    types = [e.type for e in feed.read(rig.store) if e.task == dev]
    assert "gate.rejected" in types and types.index("gate.rejected") < len(types)


def test_gate_timeout_raises_an_event(pipeline: Rig) -> None:
    rig = pipeline
    rig.configure("gate_timeout_seconds=60")
    dev = rig.task("Waits", role="developer", coder="", cwd=str(rig.work))
    rig.tick(rig.now + 1)
    rig.finish(dev, result=DEV_RESULT)
    step(rig)
    rig.tick(rig.now + 120)
    rig.tick(rig.now + 120)
    timeouts = [e for e in feed.read(rig.store) if e.type == "gate.timeout"]
    assert [e.task for e in timeouts] == [dev]


def _events(rig: Rig) -> list[Event]:
    return feed.read(rig.store)


def test_git_repo_fixture_is_a_repository(git_repo: Path) -> None:
    assert subprocess.run(["git", "-C", str(git_repo), "rev-parse"], check=False).returncode == 0


def test_a_task_with_a_gate_of_its_own_waits_for_a_person(rig: Rig, fleet: Any) -> None:
    result = fleet(
        "bd",
        "create",
        "gated",
        "--requires",
        "human",
        "--command",
        "true",
        "--coder",
        "shell",
        "--cwd",
        str(rig.work),
    )
    assert result.code == 0, result.err
    task_id = result.out.strip()
    assert fleet("bd", "create", "bad", "--requires", "someone").code == 2
    rig.tick(rig.now + 1)
    rig.finish_all()
    step(rig)
    assert [e.type for e in feed.read(rig.store) if e.task == task_id][-1] == "gate.waiting"
    rows = {r["id"]: r for r in json.loads(fleet("tasks", "--json").out)}
    assert rows[task_id]["status"] == "gate" and "waits for human" in rows[task_id]["why"]
    assert "gate is open" in fleet("approve", task_id).out
    assert task_id not in {r["id"] for r in json.loads(fleet("tasks", "--json").out)}


def test_a_roles_accounts_are_the_only_ones_its_tasks_use(rig: Rig) -> None:
    for name in ("one", "two"):
        configure.set_values(rig.store, [f"accounts.{name}.coder={scripted_coder.NAME}"])
    roles_store.add(rig.store, "tester")
    roles_store.set_values(
        rig.store, "tester", [f"coder={scripted_coder.NAME}", 'accounts=["two"]']
    )
    first, second = rig.task("a", role="tester", coder=""), rig.task("b", role="tester", coder="")
    rig.tick(rig.now + 1)
    assert rig.get(first).run is not None and rig.get(second).run is not None
    assert {rig.get(first).run.account, rig.get(second).run.account} == {"two"}  # type: ignore[union-attr]


def test_a_rule_naming_an_unknown_role_makes_a_blocked_task_saying_so(rig: Rig) -> None:
    text = (
        'coder = "shell"\nisolation = "none"\n\n'
        '[[on]]\nevent = "task.closed"\n'
        'create = { role = "ghost", title = "follow up {task.id}" }\n'
    )
    pipelines.load_config(rig.store, text)
    rig.task("closes")
    rig.tick(rig.now + 1)
    rig.finish_all()
    rig.tick(rig.now + 1)
    [made] = [Task.from_dict(b) for b in rig.store.cache.select(None) if b.get("role") == "ghost"]
    assert made.status == "blocked"
    assert "names role 'ghost', which does not exist" in made.status_reason
