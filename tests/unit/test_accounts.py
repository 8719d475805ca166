"""Account state: limits, early warnings, and the variables an account gives its agents."""

from __future__ import annotations

import pytest

from supervisor.accounts import (
    Account,
    State,
    agent_env,
    describe,
    limited,
    mark_limited,
    mark_ok,
    near_limit,
    note_utilization,
)
from supervisor.model import parse_time

NOW = parse_time("2026-11-23T12:00:00Z")


def test_limited_until_the_reset_the_cli_gave() -> None:
    state = mark_limited(State(), NOW, NOW + 900, "usage limit")
    assert parse_time(state.limited_until) == NOW + 900
    assert limited(state, NOW + 899)
    assert not limited(state, NOW + 901)


def test_limited_without_a_reset_backs_off_and_doubles() -> None:
    first = mark_limited(State(), NOW, None, "429")
    second = mark_limited(first, NOW, None, "429")
    assert parse_time(first.limited_until) == NOW + 60
    assert parse_time(second.limited_until) == NOW + 120
    assert mark_ok(second).limits_in_a_row == 0
    assert not limited(mark_ok(second), NOW)


def test_near_limit_until_its_window_resets() -> None:
    warned = note_utilization(State(), 0.95, NOW + 300, NOW)
    assert near_limit(warned, 0.9, NOW)
    assert not near_limit(warned, 0.96, NOW)
    assert not near_limit(warned, 0.9, NOW + 301)
    assert describe(warned, Account(coder="claude"), 0.9, NOW)["status"] == "near its limit (95%)"


def test_agent_env_fills_the_key_from_the_named_variable() -> None:
    account = Account(
        coder="claude", key_env="KEY_WORK", env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    )
    env = agent_env(account, "ANTHROPIC_API_KEY", {"KEY_WORK": "sk-123"})
    assert env == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "sk-123"}
    with pytest.raises(KeyError, match="KEY_WORK"):
        agent_env(account, "ANTHROPIC_API_KEY", {})


def test_state_round_trips_through_bytes() -> None:
    state = note_utilization(mark_limited(State(), NOW, None, "429"), 0.5, None, NOW)
    assert State.from_bytes(state.to_bytes()) == state
    assert State.from_bytes(None) == State()
