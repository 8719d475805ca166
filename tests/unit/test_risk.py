"""Risk scores (the logistic model by hand, the diff signals) and the quarantine commands."""

from __future__ import annotations

import json
import math
from typing import Any

from supervisor import risk
from supervisor.store.history import entries
from supervisor.store.store import Store


def test_the_score_is_the_logistic_of_the_weighted_signals() -> None:
    weights = risk.weights({"deleted_tests": 2.0})
    found = risk.assess("role:dev", {"error_rate": 0.5, "deleted_tests": 1.0, "stalls": 0.0},
                        weights, ["x"])  # fmt: skip
    z = -4.0 + 3.0 * 0.5 + 2.0 * 1.0
    assert math.isclose(found.score, 1 / (1 + math.exp(-z)))
    assert found.contributions == {"error_rate": 1.5, "deleted_tests": 2.0}
    assert found.explain() == "risk 0.38: deleted_tests 1 (+2.00), error_rate 0.5 (+1.50)"
    assert risk.assess("role:x", {}, weights, []).score < 0.02


def test_operational_signals_from_records() -> None:
    records: list[dict[str, Any]] = [
        {"task": "fl-a", "index": 0, "outcome": "failure", "reason": "exit 1"},
        {"task": "fl-a", "index": 1, "outcome": "stalled", "reason": "no output"},
        {"task": "fl-b", "index": 0, "outcome": "over_budget", "reason": "max_cost"},
        {"task": "fl-c", "index": 0, "outcome": "success", "diff": {"diff_size": 3.0,
         "deleted_tests": 1, "evidence": ["deleted the test file t/test_x.py"]}},
        {"task": "fl-d", "index": 0, "outcome": "success", "diff": {"diff_size": 1.0}},
    ]  # fmt: skip
    signals, evidence = risk.operational(records)
    assert signals["error_rate"] == 3 / 5
    assert (signals["restarts"], signals["stalls"], signals["budget_overruns"]) == (1, 1, 1)
    assert signals["deleted_tests"] == 1
    assert signals["diff_size"] == 2.0  # the mean of the attempts' diffs
    assert "fl-a#1 failure: exit 1" in evidence
    assert "fl-c#1 deleted the test file t/test_x.py" in evidence


def test_diff_signals() -> None:
    changes = [
        ("D", "pkg/tests/test_api.py", 40),
        ("D", "web/src/button.test.tsx", 10),
        ("M", "pkg/src/api.py", 5),
        ("M", "docs/readme.md", 2),
        ("A", ".github/workflows/ci.yml", 3),
        ("M", "pkg/.env", 1),
        ("A", "pkg/deploy/id_ed25519", 1),
        ("D", "pkg/src/contest.py", 5),  # not a test
    ]
    added = ["@pytest.mark.skip(reason='flaky')", "x = 1", "  it.only('runs alone', () => {"]
    found = risk.diff_signals(changes, "pkg/", added)
    assert found["deleted_tests"] == 4  # two files deleted, two tests disabled
    assert found["outside_cwd"] == 3  # web/, docs/, .github/
    assert found["ci_files"] == 1
    assert found["secrets_files"] == 2
    assert found["diff_size"] == 0.067
    assert "touched the secrets file pkg/.env" in found["evidence"]


def test_quarantine_and_release_commands(fleet: Any, store: Store) -> None:
    assert fleet("config", "set", "accounts.work.coder=claude").code == 0
    held = fleet("quarantine", "work", "--reason", "burns tokens")
    assert (held.code, held.out) == (0, "quarantined account:work: burns tokens\n")
    again = fleet("quarantine", "account:work", "--reason", "twice")
    assert again.code == 2 and "account:work is quarantined already" in again.err
    shown = json.loads(fleet("risk", "--json").out)
    assert shown["quarantined"]["account:work"]["reason"] == "burns tokens"
    assert "account:work quarantined" in fleet("risk").out
    released = fleet("release", "account:work", "--reason", "budget raised")
    assert (released.code, released.out) == (0, "released account:work\n")
    events = [(e.event, e.summary) for e in entries(store, 0)][:2]
    assert events == [
        ("released", "release account:work"),
        ("quarantined", "quarantine account:work: burns tokens"),
    ]


def test_bad_quarantine_input_changes_nothing(fleet: Any, store: Store) -> None:
    head = store.head()
    cases = [
        (("quarantine", "nobody", "--reason", "x"), "no account, role, coder or task is named"),
        (("quarantine", "planet:mars", "--reason", "x"), "is not a subject fleet can quarantine"),
        (("quarantine", "account:a b", "--reason", "x"), "is not a subject fleet can quarantine"),
        (("quarantine", "coder:claude", "--reason", " "), "--reason is empty"),
        (("release", "coder:claude"), "coder:claude is not quarantined"),
    ]
    for args, message in cases:
        result = fleet(*args)
        assert result.code == 2, (args, result.err)
        assert message in result.err and "hint:" in result.err
    assert store.head() == head
