"""Accounts, limits and budgets in the supervisor loop (fake processes, a clock the test moves)."""

from __future__ import annotations

import json

import pytest

from supervisor import accounts
from supervisor.model import parse_time
from supervisor.queue import configure
from tests.support.rig import T0, Rig
from tests.support.store_checks import run_record


def add_account(rig: Rig, name: str, **fields: object) -> None:
    entry = {"coder": "scripted", **fields}
    configure.edit_entry(rig.store, "accounts", name, entry, f"accounts: add {name}")


def state(rig: Rig, name: str) -> accounts.State:
    return accounts.State.from_bytes(rig.store.read(accounts.state_path(name)))


def waiting(rig: Rig) -> dict[str, str]:
    data: dict[str, str] = json.loads((rig.store.home / "live" / "waiting.json").read_text())
    return data


def test_rate_limited_task_moves_to_another_account_at_once(rig: Rig) -> None:
    add_account(rig, "a")
    add_account(rig, "b")
    task_id = rig.task("limited", coder="scripted", max_attempts=1)
    rig.tick(T0)
    assert rig.run_of(task_id).env["FLEET_TASK_ID"] == task_id
    first = run_record(rig.get(task_id))
    assert first["account"] == "a"  # equal headroom: by name
    rig.finish(task_id, 1, lines=[f"rate limited until {T0 + 900}"])
    rig.tick(T0 + 1)  # ends limited; the task is open again at once, not counted
    task = rig.get(task_id)
    assert task.status == "open" and task.not_before == ""
    assert task.attempts[-1]["outcome"] == "rate_limited"
    assert task.attempts[-1]["counted"] is False
    assert parse_time(state(rig, "a").limited_until) == T0 + 900
    rig.tick(T0 + 2)
    assert run_record(rig.get(task_id))["account"] == "b"
    rig.finish(task_id, 0, result={"status": "done", "summary": "ok"})
    rig.tick(T0 + 3)
    task = rig.get(task_id)
    assert task.status == "closed"  # max_attempts 1: the limited try did not count
    assert [a["account"] for a in task.attempts] == ["a", "b"]


def test_a_single_limited_account_waits_for_its_reset(rig: Rig) -> None:
    add_account(rig, "only")
    task_id = rig.task("limited", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id, 1, lines=[f"rate limited until {T0 + 600}"])
    rig.tick(T0 + 1)
    rig.tick(T0 + 2)
    task = rig.get(task_id)
    assert task.status == "open" and parse_time(task.not_before) == T0 + 600
    assert task.status_reason.startswith("rate_limited: ")
    rig.tick(T0 + 599)
    assert rig.get(task_id).status == "open"
    rig.tick(T0 + 601)
    assert run_record(rig.get(task_id))["account"] == "only"


def test_early_warning_stops_new_dispatches_to_that_account(rig: Rig) -> None:
    add_account(rig, "hot")
    first = rig.task("first", coder="scripted", priority=0)
    rig.tick(T0)
    rig.say(first, f"utilization: 0.95 {T0 + 300}")
    second = rig.task("second", coder="scripted", priority=1)
    rig.tick(T0 + 1)
    assert state(rig, "hot").utilization == 0.95
    assert rig.get(second).status == "open"
    assert waiting(rig)[second] == "waits: hot is near its limit (95%)"
    rig.finish(first, 0, result={"status": "done", "summary": "ok"})
    rig.tick(T0 + 2)
    assert rig.get(second).status == "open"  # still near its limit until the window resets
    rig.tick(T0 + 301)
    assert rig.get(second).status == "in_progress"


def test_warning_below_the_threshold_changes_nothing(rig: Rig) -> None:
    add_account(rig, "cool")
    rig.configure("limit_threshold=0.97", "max_concurrent=5")
    first = rig.task("first", coder="scripted", priority=0)
    rig.tick(T0)
    rig.say(first, f"utilization: 0.95 {T0 + 300}")
    second = rig.task("second", coder="scripted", priority=1)
    rig.tick(T0 + 1)
    assert rig.get(second).status == "in_progress"


def test_pinned_account_and_disabled_accounts(rig: Rig) -> None:
    add_account(rig, "a")
    add_account(rig, "b", disabled=True)
    pinned = rig.task("pinned to b", coder="scripted", account="b")
    missing = rig.task("pinned to nothing", coder="scripted", account="zzz")
    free = rig.task("any", coder="scripted")
    rig.tick(T0)
    assert rig.get(pinned).status == "open"
    assert waiting(rig)[pinned] == "waits: b is disabled"
    assert "account 'zzz' is not configured" in waiting(rig)[missing]
    assert run_record(rig.get(free))["account"] == "a"


def test_account_gives_its_agents_its_variables_and_config_dir(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_WORK", "sk-work")
    add_account(
        rig,
        "work",
        key_env="KEY_WORK",
        config_dir="~/.scripted-work",
        env={"SCRIPTED_BASE_URL": "http://127.0.0.1:9"},
    )
    add_account(rig, "nokey", key_env="KEY_ABSENT")
    task_id = rig.task("env", coder="scripted", account="work")
    other = rig.task("no key", coder="scripted", account="nokey")
    rig.tick(T0)
    env = rig.run_of(task_id).env
    assert env["SCRIPTED_API_KEY"] == "sk-work"
    assert env["SCRIPTED_BASE_URL"] == "http://127.0.0.1:9"
    assert env["SCRIPTED_HOME"].endswith("/.scripted-work") and "~" not in env["SCRIPTED_HOME"]
    assert "KEY_ABSENT is not set" in waiting(rig)[other]


def test_account_concurrency_cap(rig: Rig) -> None:
    add_account(rig, "small", max_concurrent=1)
    rig.configure("max_concurrent=5")
    ids = [rig.task(f"t{i}", coder="scripted") for i in range(3)]
    rig.tick(T0)
    assert [rig.get(i).status for i in ids] == ["in_progress", "open", "open"]
    assert waiting(rig)[ids[1]] == "waits: small runs 1 agents already"


def test_daily_fleet_ceiling_prevents_the_next_dispatch(rig: Rig) -> None:
    rig.configure("daily_max_cost=1.0")
    first = rig.task("spender", coder="scripted", priority=0)
    rig.tick(T0)
    rig.finish(first, 0, lines=["cost: 1.25"], result={"status": "done", "summary": "ok"})
    second = rig.task("next", coder="scripted", priority=1)
    rig.tick(T0 + 1)
    rig.tick(T0 + 2)
    assert rig.get(first).attempts[-1]["usage"]["cost_usd"] == 1.25
    assert rig.get(second).status == "open"
    assert waiting(rig)[second] == "waits: budget: the fleet's daily_max_cost 1 USD is spent"
    rig.tick(T0 + 86_400)  # the next UTC day
    assert rig.get(second).status == "in_progress"


def test_daily_account_ceiling_counts_running_agents(rig: Rig) -> None:
    add_account(rig, "capped", daily_max_tokens=100)
    add_account(rig, "spare")
    rig.configure("max_concurrent=5")
    first = rig.task("big", coder="scripted", account="capped", priority=0)
    rig.tick(T0)
    rig.say(first, "usage: 150")
    second = rig.task("pinned", coder="scripted", account="capped", priority=1)
    third = rig.task("free", coder="scripted", priority=2)
    rig.tick(T0 + 1)
    assert (
        waiting(rig)[second]
        == "waits: capped budget: account capped's daily_max_tokens 100 are used"
    )
    assert run_record(rig.get(third))["account"] == "spare"


def test_budget_warning_is_recorded_once_then_the_limit_blocks(rig: Rig) -> None:
    task_id = rig.task("spender", coder="scripted", max_cost=1.0)
    rig.tick(T0)
    rig.say(task_id, "cost: 0.85")
    rig.tick(T0 + 1)
    rig.tick(T0 + 2)
    warned = run_record(rig.get(task_id))
    assert warned["budget_warning"] == "85% of its max_cost budget used (attempt 1)"
    events = [
        e
        for e in rig.store.git.out("log", "--format=%B", "main").split("\n")
        if e.startswith("Fleet-Event:")
    ]
    assert sum("budget_warning" in e for e in events) == 1
    rig.say(task_id, "cost: 0.5")
    rig.tick(T0 + 3)
    rig.tick(T0 + 4)
    task = rig.get(task_id)
    assert (task.status, task.status_reason) == ("blocked", "budget: max_cost 1 (used 1.35)")


def test_role_and_coder_budgets_apply_to_their_tasks(rig: Rig) -> None:
    configure.edit_entry(rig.store, "roles", "reviewer", {"max_tokens": 50}, "roles: add reviewer")
    rig.configure("coders.scripted.max_tokens=500", "max_concurrent=5")
    by_role = rig.task("review", coder="scripted", role="reviewer")
    by_coder = rig.task("build", coder="scripted")
    rig.tick(T0)
    rig.say(by_role, "usage: 60")
    rig.say(by_coder, "usage: 60")
    rig.tick(T0 + 1)
    rig.tick(T0 + 2)
    assert rig.get(by_role).status_reason == "budget: max_tokens 50 (used 60)"
    assert rig.get(by_coder).status == "in_progress"


def test_budget_spans_the_tasks_attempts(rig: Rig) -> None:
    rig.configure("backoff_seconds=0")
    task_id = rig.task("retried", coder="scripted", max_tokens=100, max_attempts=5)
    rig.tick(T0)
    rig.finish(task_id, 1, lines=["usage: 70"])
    rig.tick(T0 + 1)
    rig.tick(T0 + 2)
    rig.say(task_id, "usage: 40")
    rig.tick(T0 + 3)
    rig.tick(T0 + 4)
    assert rig.get(task_id).status_reason == "budget: max_tokens 100 (used 110)"


def test_state_of_a_limited_account_resets_after_success(rig: Rig) -> None:
    add_account(rig, "a")
    task_id = rig.task("limited", coder="scripted")
    rig.tick(T0)
    rig.finish(task_id, 1, lines=[f"rate limited until {T0 + 10}"])
    rig.tick(T0 + 1)
    assert state(rig, "a").limits_in_a_row == 1
    rig.tick(T0 + 11)
    rig.finish(task_id, 0, result={"status": "done", "summary": "ok"})
    rig.tick(T0 + 12)
    assert state(rig, "a") == accounts.State()
