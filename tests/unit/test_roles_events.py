"""Roles, `[[on]]` rules, gates and the event feed as commands see them: the files, the bad inputs
(one clear error naming the line, nothing changed) and the typed history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor import gates, roles, subscriptions
from supervisor.config import Config
from supervisor.errors import BadInput
from supervisor.events import Event, derive
from supervisor.model import Task
from supervisor.store.store import Change, Store

Fleet = Any


def ok(result: Any) -> Any:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    return result


def refused(result: Any, *words: str) -> str:
    assert result.code == 2, f"exit {result.code}: {result.out} {result.err}"
    first = result.err.splitlines()[0]
    assert first.startswith("fleet: "), result.err
    for word in words:
        assert word in first, first
    assert "hint:" in result.err
    return str(first)


# -- role files -------------------------------------------------------------------------------


def test_every_template_parses_and_renders_back() -> None:
    for name in roles.TEMPLATES:
        role = roles.parse(name, roles.template(name))
        assert role.handbook.startswith("# "), name
        assert len(role.handbook) > 400, f"{name}'s handbook is too thin to be used"
        again = roles.parse(name, roles.render(role))
        assert again.settings == role.settings and again.handbook == role.handbook


def test_a_malformed_role_file_names_its_line() -> None:
    text = '+++\ncoder = "claude"\nmax_concurrent = "many"\n+++\n\n# Dev\n'
    with pytest.raises(BadInput, match=r"roles/dev.md line 3: max_concurrent"):
        roles.parse("dev", text)
    with pytest.raises(BadInput, match=r"roles/dev.md line 3: "):
        roles.parse("dev", '+++\ncoder = "claude"\nmodel = \n+++\n')
    with pytest.raises(BadInput, match=r"line 1: the settings header .* never closed"):
        roles.parse("dev", "+++\ncoder = 'x'\n")
    with pytest.raises(BadInput, match=r"line 2: colour: Extra inputs"):
        roles.parse("dev", "+++\ncolour = 'red'\n+++\n")


def test_roles_commands(fleet: Fleet, store: Store) -> None:
    ok(fleet("roles", "add", "developer"))
    ok(fleet("roles", "add", "second", "--from", "reviewer"))
    ok(fleet("roles", "set", "second", "model=opus", "max_concurrent=2", 'tools.deny=["WebFetch"]'))
    listed = json.loads(ok(fleet("roles", "--json")).out)
    assert [r["name"] for r in listed] == ["developer", "second"]
    second = json.loads(ok(fleet("roles", "show", "second", "--json")).out)
    assert second["model"] == "opus" and second["max_concurrent"] == 2
    assert second["tools"]["deny"] == ["WebFetch"]
    assert "# Reviewer" in second["handbook"]
    text = (store.read("roles/second.md") or b"").decode()
    assert text.startswith("+++\n") and 'model = "opus"' in text  # a file in the store
    log = json.loads(ok(fleet("log", "--json")).out)
    assert log[0]["summary"].startswith("role second: model=opus")


def test_roles_bad_input_changes_nothing(fleet: Fleet, store: Store) -> None:
    ok(fleet("roles", "add", "developer"))
    head = store.head()
    refused(fleet("roles", "add", "developer"), "already exists")
    refused(fleet("roles", "add", "Bad Name"), "not a valid role name")
    refused(fleet("roles", "add", "x", "--from", "nope"), "no role template")
    refused(fleet("roles", "set", "developer", "max_concurrent=0"), "line")
    refused(fleet("roles", "set", "developer", "colour=red"), "no setting 'colour'")
    refused(fleet("roles", "set", "developer", "coder=nosuch"), "unknown coder")
    refused(fleet("roles", "set", "ghost", "model=x"), "role ghost does not exist")
    assert store.head() == head


def test_bd_create_refuses_an_unknown_role_and_a_role_whose_coder_is_missing(
    fleet: Fleet, store: Store
) -> None:
    ok(fleet("roles", "add", "developer"))
    head = store.head()
    refused(fleet("bd", "create", "x", "--role", "nope"), "unknown role 'nope'")
    # a role file whose coder is gone (a plugin uninstalled since)
    text = '+++\ncoder = "gone"\n+++\n\n# Ghost\n'
    store.mutate(
        lambda s: (Change("ghost", "role_changed", files={"roles/ghost.md": text.encode()}), None)
    )
    head = store.head()
    refused(fleet("bd", "create", "x", "--role", "ghost"), "coder 'gone'", "not installed")
    assert store.head() == head
    task_id = ok(fleet("bd", "create", "x", "--role", "developer")).out.strip()
    assert store.get(task_id).role == "developer"


def test_an_old_config_role_table_is_still_a_role(fleet: Fleet) -> None:
    ok(fleet("config", "set", "roles.legacy.coder=codex", "roles.legacy.handbook=Old text."))
    listed = {r["name"]: r for r in json.loads(ok(fleet("roles", "--json")).out)}
    assert listed["legacy"]["source"] == "config" and listed["legacy"]["coder"] == "codex"
    ok(fleet("bd", "create", "x", "--role", "legacy"))


# -- [[on]] rules -----------------------------------------------------------------------------


RULES = """coder = "shell"

[[on]]
event = "task.closed"
where = { role = "developer" }
create = { role = "reviewer", title = "Review {task.id}", knowledge = ["diff"] }

[[on]]
event = "review.verdict"
where = { "data.verdict" = "changes_requested" }
reopen = "origin"
"""


def test_a_malformed_rule_names_its_line_and_changes_nothing(
    fleet: Fleet, store: Store, tmp_path: Path
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(RULES)
    ok(fleet("config", "load", str(good)))
    head = store.head()
    cases = {
        'reopen = "origin"': ('reopen = "everyone"', "line 8", "reopen must be"),
        'where = { role = "developer" }': ('where = { colour = "red" }', "line 3", "colour"),
        'knowledge = ["diff"]': ('knowledge = ["secrets"]', "line 3", "knowledge"),
        'event = "review.verdict"': ("", "line 8", "needs event"),
    }
    for old, (new, line, word) in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(RULES.replace(old, new))
        refused(fleet("config", "load", str(bad)), f"config.toml {line}", word)
    two = tmp_path / "two.toml"
    two.write_text(RULES + 'run = "true"\n')
    refused(fleet("config", "load", str(two)), "line 8", "exactly one action")
    assert store.head() == head


def test_rules_match_and_render() -> None:
    [rule] = subscriptions.parse_rules(
        '[[on]]\nevent = "review.*"\nwhere = { "data.verdict" = "approved", label = "ui" }\n'
        'run = "echo {task.id} {data.verdict} {event.type}"\n',
        [
            {
                "event": "review.*",
                "where": {"data.verdict": "approved", "label": "ui"},
                "run": "echo {task.id} {data.verdict} {event.type}",
            }
        ],
    )
    event = Event("review.verdict", "fl-1", "", {"verdict": "approved"})
    assert subscriptions.matches(rule, event, {"id": "fl-1", "labels": ["ui"]})
    assert not subscriptions.matches(rule, event, {"id": "fl-1", "labels": []})
    other = Event("review.verdict", "fl-1", "", {"verdict": "changes_requested"})
    assert not subscriptions.matches(rule, other, {"labels": ["ui"]})
    rendered = subscriptions.render(rule.command, event, {"id": "fl-1"})
    assert rendered == "echo fl-1 approved review.verdict"


def test_init_pipeline_review(fleet: Fleet, store: Store) -> None:
    out = ok(fleet("init", "--pipeline", "review")).out
    assert "role developer: added" in out and "role reviewer: added" in out
    listed = {r["name"]: r for r in json.loads(ok(fleet("roles", "--json")).out)}
    assert listed["developer"]["requires"] == ["role:reviewer", "human"]
    assert listed["developer"]["deliver"] == "merge"
    config = json.loads(ok(fleet("config", "show", "--json")).out)
    assert [r["event"] for r in config["on"]] == ["task.closed", "review.verdict", "review.verdict"]
    ok(fleet("config", "set", "max_concurrent=4"))  # the rules survive other changes
    assert len(json.loads(ok(fleet("config", "show", "--json")).out)["on"]) == 3
    head = store.head()
    refused(fleet("init", "--pipeline", "review"), "already has [[on]] rules")
    refused(fleet("init", "--pipeline", "nope"), "no pipeline named")
    assert store.head() == head


# -- gates ------------------------------------------------------------------------------------


def _closed(**extra: Any) -> Task:
    task = Task("fl-1", "t", status="closed", role="developer", closed_at="2026-01-01T00:00:00Z")
    task.attempts = [
        {"n": 1, "outcome": "success", "coder": "claude", "model": "m1", "account": ""}
    ]
    task.extra.update(extra)
    return task


def test_may_deliver() -> None:
    config = Config.model_validate(
        {"roles": {"developer": {"requires": ["role:reviewer", "human"]}}}
    )
    task = _closed()
    assert gates.may_deliver(task, [], config).waiting_for == ["role:reviewer", "human"]
    reviewer = {"kind": "role", "role": "reviewer", "verdict": "approved", "work": 1}
    same = {**reviewer, "coder": "claude", "model": "m1", "account": ""}
    other = {**reviewer, "coder": "claude", "model": "m2", "account": ""}
    human = {"kind": "human", "by": "alice", "verdict": "approved", "work": 1}
    assert gates.may_deliver(task, [same, human], config).waiting_for == ["role:reviewer"]
    assert gates.may_deliver(task, [other, human], config).ok
    stale = {**human, "work": 0}  # approved an earlier version of the work
    assert not gates.may_deliver(task, [other, stale], config).ok
    rejected = {"kind": "human", "by": "bob", "verdict": "rejected", "work": 1, "reason": "no"}
    assert "rejected by bob" in gates.may_deliver(task, [other, human, rejected], config).reason
    task.status = "open"
    assert not gates.may_deliver(task, [other, human], config).ok
    own = _closed(requires=["human"])  # the task's own requirements win over its role's
    assert gates.may_deliver(own, [human], config).ok
    assert gates.may_deliver(_closed(), [], Config()).ok  # no gate


def test_approve_and_reject_commands(fleet: Fleet, store: Store, tmp_path: Path) -> None:
    task_id = ok(fleet("bd", "create", "x", "--cwd", str(tmp_path))).out.strip()
    head = store.head()
    refused(fleet("approve", task_id), "no finished work to approve")
    refused(fleet("approve", "fl-zzzz"), "does not exist")
    assert store.head() == head
    ok(fleet("bd", "close", task_id))
    assert "gate is open" in ok(fleet("approve", task_id, "--comment", "fine")).out
    refused(fleet("reject", task_id, "--reason", " "), "needs a reason")
    ok(fleet("reject", task_id, "--reason", "wrong file"))
    task = store.get(task_id)
    assert task.status == "open" and task.extra["handoff"]["verdict"] == "rejected"
    report = json.loads(ok(fleet("task", task_id, "gate", "--json")).out)
    assert [a["verdict"] for a in report["approvals"]] == ["approved", "rejected"]


# -- events -----------------------------------------------------------------------------------


def test_derive_events_from_two_versions_of_a_task() -> None:
    new = {"id": "fl-1", "title": "t", "status": "open"}
    assert [k for k, _ in derive(None, new)] == ["task.created"]
    claimed = {**new, "status": "in_progress", "run": {"attempt": 1, "coder": "shell"}}
    assert [k for k, _ in derive(new, claimed)] == ["task.claimed"]
    ended = {**new, "status": "closed", "attempts": [{"n": 1, "outcome": "success"}]}
    assert [k for k, _ in derive(claimed, ended)] == ["attempt.ended", "task.closed"]
    over = {**new, "status": "blocked", "attempts": [{"n": 1, "outcome": "over_budget"}]}
    kinds = [k for k, _ in derive(claimed, over)]
    assert kinds == ["attempt.ended", "budget.exceeded", "task.blocked"]
    assert [k for k, _ in derive(ended, {**ended, "status": "open"})] == ["task.reopened"]


def test_events_and_emit_commands(fleet: Fleet, store: Store, tmp_path: Path) -> None:
    task_id = ok(fleet("bd", "create", "x", "--cwd", str(tmp_path))).out.strip()
    ok(fleet("emit", "deploy.done", "--task", task_id, "--data", '{"env": "prod"}'))
    ok(fleet("bd", "close", task_id))
    lines = ok(fleet("events", "--json")).out.splitlines()
    found = [json.loads(line) for line in lines]
    assert [(e["type"], e["task"]) for e in found] == [
        ("task.created", task_id),
        ("deploy.done", task_id),
        ("task.closed", task_id),
    ]
    assert all({"type", "task", "time", "id"} <= set(e) for e in found)
    assert found[1]["data"] == {"env": "prod"}
    after = json.loads(lines[0])["id"]
    rest = ok(fleet("events", "--json", "--after", after)).out.splitlines()
    assert [json.loads(line)["type"] for line in rest] == ["deploy.done", "task.closed"]
    only = ok(fleet("events", "--json", "--type", "task.*", "--task", task_id)).out.splitlines()
    assert [json.loads(line)["type"] for line in only] == ["task.created", "task.closed"]
    assert ok(fleet("events", "--since", "1h")).out.count("\n") == 3
    head = store.head()
    refused(fleet("emit", "Not A Type"), "event type")
    refused(fleet("emit", "x.y", "--data", "[1]"), "not a JSON object")
    refused(fleet("emit", "x.y", "--data", "{nope"), "not JSON")
    refused(fleet("emit", "x.y", "--task", "fl-zzzz"), "does not exist")
    refused(fleet("events", "--after", "nonsense"), "not an event id")
    refused(fleet("events", "--since", "yesterday"), "not a time")
    assert store.head() == head


def test_a_roles_tools_become_claudes_allow_and_deny_flags(tmp_path: Path) -> None:
    from coders.base import RunSpec
    from coders.claude import ClaudeCoder

    spec = RunSpec("fl-1", 1, "prompt", tmp_path, tmp_path / "result.json")
    spec.options = {"allowed_tools": ["Read", "Write", "Bash(git *)"], "denied_tools": ["WebFetch"]}
    argv = ClaudeCoder().command(spec).argv
    assert "--allowedTools=Read Write Bash(git *)" in argv
    assert "--disallowedTools=WebFetch" in argv
    assert "--allowedTools=Bash" not in argv  # the role's list replaces the default
    plain = ClaudeCoder().command(RunSpec("fl-1", 1, "p", tmp_path, tmp_path / "r.json")).argv
    assert "--allowedTools=Bash" in plain and not any("disallowed" in a for a in plain)


def test_a_handoff_is_shown_until_the_rework_succeeds() -> None:
    from supervisor.handoffs import pending_handoff, reopen_for_rework, reopens

    task = _closed()
    reopen_for_rework(task, {"by": "fl-r", "verdict": "changes_requested"}, 0.0)
    assert task.status == "open" and reopens(task) == 1
    assert pending_handoff(task) is not None
    task.attempts.append({"n": 2, "outcome": "failure"})  # a failed try still answers it
    assert pending_handoff(task) is not None
    task.attempts.append({"n": 3, "outcome": "success"})
    task.status = "open"  # reopened by hand later: the old review is not brought back
    assert pending_handoff(task) is None
    person = _closed()
    reopen_for_rework(person, {"by": "alice", "verdict": "rejected"}, 0.0, counted=False)
    assert reopens(person) == 0


def test_bd_create_names_the_line_of_a_malformed_role_file(fleet: Fleet, store: Store) -> None:
    text = "+++\ncoder = \n+++\n\n# Broken\n"
    store.mutate(
        lambda s: (Change("b", "role_changed", files={"roles/broken.md": text.encode()}), None)
    )
    head = store.head()
    refused(fleet("bd", "create", "x", "--role", "broken"), "roles/broken.md line 2")
    refused(fleet("roles", "show", "broken"), "roles/broken.md line 2")
    assert store.head() == head
