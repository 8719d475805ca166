"""Routing rules on a table of tasks, and the definition of ready (`supervisor.routing`)."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor import routing
from supervisor.config import Config
from supervisor.model import Task

ROLES = {
    "developer": {"coder": "claude"},
    "docs-writer": {"coder": "claude"},
    "tester": {"coder": "codex"},
    "security-reviewer": {"coder": "claude"},
    "release-manager": {"coder": "shell"},
}
RULES = [
    {"role": "security-reviewer", "labels": ["security", "cve"]},
    {"role": "docs-writer", "words": ["docs", "readme", "documentation"]},
    {"role": "docs-writer", "paths": ["/src/site/**"]},
    {"role": "tester", "words": ["test", "flaky"], "types": ["bug"]},
    {"role": "release-manager", "labels": ["release"], "words": ["tag", "publish"]},
    {"role": "developer", "types": ["feature", "task", "bug"]},
]
# (title, labels, cwd, type, role it goes to, the rule that chose it; "" = none: the default)
TABLE: list[tuple[str, list[str], str, str, str, str]] = [
    ("Patch the CVE in the parser", ["cve"], "/src/app", "bug", "security-reviewer", "rule 1"),
    ("Rotate the signing key", ["security"], "/src/app", "chore", "security-reviewer", "rule 1"),
    ("Fix the README typo", [], "/src/app", "task", "docs-writer", "rule 2"),
    ("Docs for the API", [], "/src/app", "task", "docs-writer", "rule 2"),
    ("Write documentation for login", [], "/src/app", "feature", "docs-writer", "rule 2"),
    ("Fix the header colour", [], "/src/site/pages", "bug", "docs-writer", "rule 3"),
    ("New landing page", [], "/src/site", "feature", "docs-writer", "rule 3"),
    ("Flaky login test", [], "/src/app", "bug", "tester", "rule 4"),
    ("Test fails on CI", [], "/src/app", "bug", "tester", "rule 4"),
    ("Add a test for sessions", [], "/src/app", "task", "developer", "rule 6"),  # not a bug
    ("Tag 2.1 and publish it", ["release"], "/src/app", "chore", "release-manager", "rule 5"),
    ("Publish the wheels", [], "/src/app", "chore", "", ""),  # no release label, a chore
    ("Cut the release notes", ["release"], "/src/app", "task", "developer", "rule 6"),  # no word
    ("Implement dark mode", [], "/src/app", "feature", "developer", "rule 6"),
    ("Crash on empty input", [], "/src/app", "bug", "developer", "rule 6"),
    ("Refactor the cache", [], "/src/app", "task", "developer", "rule 6"),
    ("Decide on the queue", [], "/src/app", "decision", "", ""),
    ("Spike: try SQLite FTS", [], "/src/app", "spike", "", ""),
    ("Update dependencies", [], "/src/sitemap", "chore", "", ""),  # /src/site* is not /src/site/
    ("docs-only change", [], "/src/app", "epic", "docs-writer", "rule 2"),
]


def config(**extra: Any) -> Config:
    return Config.model_validate({"roles": ROLES, "route": RULES, **extra})


def task(title: str, labels: list[str], cwd: str, kind: str, **fields: Any) -> Task:
    return Task(id="fl-abcd", title=title, labels=labels, cwd=cwd, issue_type=kind, **fields)


@pytest.mark.parametrize(("title", "labels", "cwd", "kind", "role", "by"), TABLE)
def test_rules_route_a_table_of_tasks(
    title: str, labels: list[str], cwd: str, kind: str, role: str, by: str
) -> None:
    decision = routing.decide(task(title, labels, cwd, kind), config())
    assert decision.role == role
    assert decision.purpose == ""
    if by:
        assert decision.route is not None
        assert decision.route["by"] == by and decision.route["role"] == role
    else:
        assert decision.route is None


def test_the_table_covers_every_rule() -> None:
    used = {by for *_, by in TABLE if by}
    assert used == {f"rule {i}" for i in range(1, len(RULES) + 1)}


def test_a_task_that_names_its_role_or_coder_is_not_routed() -> None:
    cfg = config()
    named = task("docs", [], "/src/app", "task", role="developer")
    assert routing.decide(named, cfg).role == "developer"
    coded = task("docs", [], "/src/app", "task", coder="shell")
    assert routing.decide(coded, cfg).role == "" and routing.decide(coded, cfg).route is None


def test_no_rule_and_a_triage_role_means_triage() -> None:
    cfg = config(roles={**ROLES, "triage": {"coder": "claude"}})
    decision = routing.decide(task("Decide on the queue", [], "/src/app", "decision"), cfg)
    assert (decision.role, decision.purpose) == ("triage", routing.TRIAGE)
    routed = task("Decide on the queue", [], "/src/app", "decision")
    routed.route = {"role": "developer", "by": "triage", "reason": "it is code"}
    assert routing.decide(routed, cfg).purpose == ""  # triaged once: never again


def test_explain_names_each_rule_and_why_it_does_not_match() -> None:
    lines = routing.explain(task("Publish the wheels", [], "/src/app", "chore"), config())
    assert lines[4] == (
        "rule 5 (labels release; words tag, publish) -> release-manager: does not match:"
        " no label of release"
    )
    assert lines[1] == (
        "rule 2 (words docs, readme, documentation) -> docs-writer: does not match:"
        " no word of docs, readme, documentation in the title"
    )
    assert lines[5] == (
        "rule 6 (types feature, task, bug) -> developer: does not match:"
        " type chore not in feature, task, bug"
    )
    assert lines[-1] == "no rule matches and no 'triage' role: runs as coder claude"
    hit = routing.explain(task("Docs for the API", [], "/src/app", "task"), config())
    assert hit[1] == "rule 2 (words docs, readme, documentation) -> docs-writer: matches"


def test_a_role_that_requires_refinement_sends_a_vague_task_to_the_refiner() -> None:
    roles = {
        "developer": {"coder": "claude", "ready_when": ["acceptance", "estimate"]},
        "product-owner": {"coder": "claude"},
    }
    cfg = Config.model_validate({"roles": roles})
    vague = task("Make it better", [], "/src/app", "task", role="developer")
    decision = routing.decide(vague, cfg)
    assert (decision.role, decision.purpose) == ("product-owner", routing.REFINE)
    assert decision.missing == ["acceptance", "estimate"]
    vague.acceptance_criteria = "p95 under 200 ms"
    vague.extra["estimated_minutes"] = 90
    assert routing.decide(vague, cfg).role == "developer"
    by_hand = task("Make it better", ["refined"], "/src/app", "task", role="developer")
    assert routing.decide(by_hand, cfg).purpose == ""


def test_without_a_refiner_a_vague_task_waits_and_says_how_to_go_on() -> None:
    cfg = Config.model_validate(
        {"roles": {"developer": {"coder": "claude", "ready_when": ["description"]}}}
    )
    decision = routing.decide(task("x", [], "/src/app", "task", role="developer"), cfg)
    assert decision.waits == (
        "waits: needs refinement (description) before role developer: configure role"
        " 'product-owner', or refine it by hand and `fleet bd update fl-abcd --add-label refined`"
    )
