"""The usage ledger adds up exactly what the attempts recorded."""

from __future__ import annotations

from supervisor.ledger import aggregate, total
from supervisor.model import Task, parse_time


def attempt(
    n: int, outcome: str, day: str, model: str, account: str, tokens: int, cost: float
) -> dict[str, object]:
    return {
        "n": n,
        "outcome": outcome,
        "coder": "claude" if model.startswith("claude") else "codex",
        "model": model,
        "account": account,
        "started_at": f"{day}T10:00:00Z",
        "ended_at": f"{day}T10:01:00Z",
        "seconds": 60.0,
        "usage": {
            "input_tokens": tokens,
            "output_tokens": tokens // 10,
            "cache_read_tokens": 5,
            "cost_usd": cost,
        },
    }


def tasks() -> list[Task]:
    a = Task(id="fl-aaaa", title="a", role="dev")
    a.attempts = [
        attempt(1, "failure", "2026-11-20", "claude-sonnet", "work", 1000, 0.25),
        attempt(2, "success", "2026-11-21", "claude-sonnet", "personal", 2000, 0.5),
    ]
    b = Task(id="fl-bbbb", title="b", role="review")
    b.attempts = [attempt(1, "success", "2026-11-21", "gpt-5.5", "", 500, 0.0)]
    return [a, b]


def test_by_coder_sums_the_attempts() -> None:
    lines = {line.key: line.to_dict() for line in aggregate(tasks(), "coder")}
    assert lines["claude"]["attempts"] == 2
    assert lines["claude"]["input_tokens"] == 3000
    assert lines["claude"]["output_tokens"] == 300
    assert lines["claude"]["cache_read_tokens"] == 10
    assert lines["claude"]["cost_usd"] == 0.75
    assert lines["claude"]["success_rate"] == 0.5
    assert lines["claude"]["cost_per_success_usd"] == 0.75
    assert lines["codex"]["successes"] == 1


def test_every_grouping_has_the_same_total() -> None:
    expected = total(aggregate(tasks(), "task")).to_dict()
    for by in ("coder", "model", "account", "role", "day"):
        got = total(aggregate(tasks(), by)).to_dict()
        assert {k: got[k] for k in ("attempts", "input_tokens", "cost_usd", "seconds")} == {
            k: expected[k] for k in ("attempts", "input_tokens", "cost_usd", "seconds")
        }
    assert expected["attempts"] == 3
    assert expected["cost_usd"] == 0.75
    assert expected["seconds"] == 180.0


def test_by_day_and_since() -> None:
    by_day = {line.key: line.attempts for line in aggregate(tasks(), "day")}
    assert by_day == {"2026-11-20": 1, "2026-11-21": 2}
    recent = aggregate(tasks(), "account", since=parse_time("2026-11-21T00:00:00Z"))
    assert {line.key: line.attempts for line in recent} == {"personal": 1, "": 1}
