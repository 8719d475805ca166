"""`fleet eval`: scorecards on a seeded store of 1,000 tasks and 2,000 attempts equal what the
seed's arithmetic says, by coder, by role and over a window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.model import Task, iso
from supervisor.store.store import Change, Snapshot, Store
from tests.conftest import Result

CODERS = ("claude", "codex", "gemini", "shell")
BASE = 1_800_000_000  # 2027-01-15
# The attempts of a task by i % 5: (outcome, extra fields of the record)
PLANS: dict[int, list[tuple[str, dict[str, Any]]]] = {
    0: [("success", {"merge": {"checks": "passed"}})],
    1: [("failure", {}), ("success", {"review": {"verdict": "changes_requested"}})],
    2: [("stalled", {}), ("timed_out", {}), ("success", {"checks": False})],
    3: [("success", {"review": {"verdict": "approved"}}), ("success", {})],
    4: [("failure", {}), ("stalled", {"open_questions": ["which API?"]})],
}


def seed_tasks(count: int = 1000) -> list[dict[str, Any]]:
    tasks = []
    for i in range(count):
        attempts = []
        for j, (outcome, extra) in enumerate(PLANS[i % 5]):
            attempts.append(
                {
                    "n": j + 1,
                    "outcome": outcome,
                    "coder": CODERS[i % 4],
                    "model": f"model-{i % 2}",
                    "account": f"acct-{i % 3}",
                    "started_at": iso(BASE + i * 60 + j * 10),
                    "ended_at": iso(BASE + i * 60 + j * 10 + 5),
                    "seconds": 10 * (j + 1),
                    "usage": {"input_tokens": 100, "output_tokens": 10, "cost_usd": 0.02},
                    "open_questions": [],
                    **extra,
                }
            )
        task: dict[str, Any] = {
            "id": f"fl-s{i:04d}",
            "title": f"seeded {i}",
            "status": "closed" if i % 5 != 4 else "blocked",
            "role": "dev" if i % 2 == 0 else "review",
            "coder": CODERS[i % 4],
            "created_at": iso(BASE + i * 60),
            "updated_at": iso(BASE + i * 60 + 30),
            "attempts": attempts,
        }
        if i % 5 != 4:
            task["closed_at"] = iso(BASE + i * 60 + 30)
        if i % 5 == 1:
            task["dependencies"] = [
                {"issue_id": task["id"], "depends_on_id": f"fl-s{i - 1:04d}", "type": "blocks"}
            ]
        tasks.append(task)
    return tasks


def seed(home: Path, tasks: list[dict[str, Any]]) -> None:
    store = Store.open(home)

    def build(snap: Snapshot) -> tuple[Change, None]:
        change = Change(f"seed {len(tasks)} tasks", "imported")
        for data in tasks:
            change.put(Task.from_dict(data))
        return change, None

    try:
        store.mutate(build)
    finally:
        store.close()


@pytest.fixture
def seeded(home: Path) -> list[dict[str, Any]]:
    tasks = seed_tasks()
    assert sum(len(t["attempts"]) for t in tasks) == 2000
    seed(home, tasks)
    return tasks


def cards(fleet: Any, *args: str) -> dict[str, dict[str, Any]]:
    result: Result = fleet("eval", "--json", *args)
    assert result.code == 0, result.err
    return {c["key"]: c for c in json.loads(result.out)["cards"]}


def test_by_coder_equals_the_hand_computation(seeded: list[dict[str, Any]], fleet: Any) -> None:
    # Each coder has 250 tasks, 50 of each plan: 500 attempts, 200 closed.
    found = cards(fleet, "--by", "coder")
    assert sorted(found) == sorted(CODERS)
    for card in found.values():
        assert card["throughput"] == {"closed": 200, "attempts": 500, "tasks": 250}
        assert card["reliability"] == {
            "success_rate": 0.5,  # 50 + 50 + 50 + 100 successes
            "successes": 250,
            "failures": 250,  # plan 1: 50, plan 2: 100, plan 4: 100
            "retries": 250,  # second and third attempts: 50 + 100 + 50 + 50
            "stalls": 100,
            "timeouts": 50,
        }
        assert card["quality"] == {
            "approved": 50,
            "rejected": 50,
            "checks_passed": 50,
            "checks_failed": 50,
            "partial": 0,
            "reopened": 50,  # plan 3 ran again after its success
            "reopen_rate": 0.2,  # 50 / (200 + 50)
        }
        # seconds per 5 tasks: 10 + 30 + 60 + 30 + 30 = 160, times 50
        assert card["efficiency"] == {
            "seconds": 8000.0,
            "tokens": 55000,
            "cost_usd": 10.0,
            "seconds_per_closed": 40.0,
            "tokens_per_closed": 275.0,
            "cost_per_closed_usd": 0.05,
        }
        # 200 plan-1 tasks each waited for the plan-0 task before it: 50 per coder
        assert card["collaboration"] == {"handoffs_accepted": 50, "questions": 50}
        assert card["verdict"] == (
            "fair: 50% of 500 attempts succeeded, $0.05 per closed task; 100 stalls, 50 timeouts"
        )


def test_by_role_and_model(seeded: list[dict[str, Any]], fleet: Any) -> None:
    for by, keys in (("role", ("dev", "review")), ("model", ("model-0", "model-1"))):
        found = cards(fleet, "--by", by)
        assert sorted(found) == list(keys)
        for card in found.values():
            assert card["throughput"] == {"closed": 400, "attempts": 1000, "tasks": 500}
            assert card["reliability"]["successes"] == 500


def test_a_window_counts_only_the_attempts_that_ended_in_it(
    seeded: list[dict[str, Any]], fleet: Any
) -> None:
    since = iso(BASE + 600 * 60)  # tasks 600..999
    found = cards(fleet, "--by", "account", "--since", since)
    expected: dict[str, dict[str, int]] = {}
    for task in seeded:
        for attempt in task["attempts"]:
            if attempt["ended_at"] >= since:
                slot = expected.setdefault(attempt["account"], {"attempts": 0, "successes": 0})
                slot["attempts"] += 1
                slot["successes"] += attempt["outcome"] == "success"
    assert sum(e["attempts"] for e in expected.values()) == 800
    assert {k: c["throughput"]["attempts"] for k, c in found.items()} == {
        k: e["attempts"] for k, e in expected.items()
    }
    assert {k: c["reliability"]["successes"] for k, c in found.items()} == {
        k: e["successes"] for k, e in expected.items()
    }


def test_bad_input_and_an_empty_store(fleet: Any) -> None:
    result: Result = fleet("eval", "--since", "last tuesday")
    assert result.code == 2
    assert "fleet: --since 'last tuesday' is neither a date nor a span" in result.err
    assert "hint:" in result.err
    empty: Result = fleet("eval")
    assert (empty.code, empty.out) == (0, "no attempts on record\n")


def test_the_table_shows_each_verdict(seeded: list[dict[str, Any]], fleet: Any) -> None:
    result: Result = fleet("eval", "--by", "coder", "--since", "3650d")
    assert result.code == 0, result.err
    assert "claude: fair: 50% of 500 attempts succeeded" in result.out
    assert result.out.splitlines()[0].split()[:3] == ["CODER", "CLOSED", "ATTEMPTS"]
