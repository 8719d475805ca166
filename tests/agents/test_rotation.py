"""Account rotation with the REAL claude and codex CLIs: a usage limit moves the task to the next
account, an early warning stops dispatches to the warned account, and `fleet usage` adds up
exactly what the attempts recorded.

Each account points its agents at a mock model server of its own (`--env` with the base URL) and
reads its key from a variable of the supervisor's (`--key-env`); Claude shows usage limits and
their warnings only to a subscription, so its limited account passes the key as
`CLAUDE_CODE_OAUTH_TOKEN` (`--key-as`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import coders
from coders.check.mock.base import HELLO_NAME, HELLO_TEXT, MockServer, Script
from supervisor.ledger import TOKEN_KINDS, attempt_day
from supervisor.model import Task, iso, parse_time
from supervisor.store.store import Store
from tests.support.agent_cli import ok_script
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    base_url,
    create,
    mock_for,
    ok,
    read_json,
    run_supervisor,
    task_of,
    use_clis,
)


@dataclass(frozen=True)
class Flavour:
    """How one coder's accounts are set up and how its CLI states a reset time."""

    name: str
    key_as: str  # for the account whose limits the CLI must see ("" = the coder's key_env)
    reset_slack: float  # seconds the reported reset may trail the mock's


FLAVOURS = {
    # the reset comes in the limit's headers, to the second
    "claude": Flavour("claude", "CLAUDE_CODE_OAUTH_TOKEN", 1),
    # "try again at 3:17 PM": to the minute, read as that minute's end
    "codex": Flavour("codex", "", 61),
}
KEYS = {"FIRST_KEY": "sk-first-account", "SECOND_KEY": "sk-second-account"}


@pytest.fixture
def work(tmp_path: Path, fleet: Fleet) -> Path:
    """A plain working directory; the fleet configured for quick runs."""
    ok(fleet("config", "set", *QUICK_CONFIG))
    path = tmp_path / "work"
    path.mkdir()
    return path


def add_account(
    fleet: Fleet, flavour: Flavour, name: str, mock: MockServer, config_dir: Path, key_as: str = ""
) -> None:
    """Account `name` of the flavour's coder: its agents talk to `mock`, with the key in
    `<NAME>_KEY`."""
    coder = flavour.name
    url = f"{coders.get(coder).base_url_env}={base_url(coder, mock)}"
    options = ["--coder", coder, "--config-dir", str(config_dir)]
    options += ["--key-env", f"{name.upper()}_KEY", "--env", url]
    ok(fleet("accounts", "add", name, *options, *(["--key-as", key_as] if key_as else [])))


def use_accounts(monkeypatch: pytest.MonkeyPatch, flavour: Flavour) -> None:
    use_clis(monkeypatch, flavour.name)
    for variable, key in KEYS.items():
        monkeypatch.setenv(variable, key)


def accounts_by_name(fleet: Fleet) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in read_json(fleet, "accounts")}


def credential(mock: MockServer) -> str:
    """The credential the agent sent the mock: a bearer token or an API key."""
    headers = {k.lower(): v for k, v in mock.requests[0].headers.items()}
    return headers.get("authorization") or headers["x-api-key"]


# -- which variable the key goes in ----------------------------------------------------------


def test_key_as_is_one_of_the_coders_credential_variables(fleet: Fleet) -> None:
    oauth = "CLAUDE_CODE_OAUTH_TOKEN"
    wrong = fleet("accounts", "add", "x", "--coder", "claude", "--key-env", "K", "--key-as", "PATH")
    assert wrong.code == 2
    known = "ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, CLAUDE_CODE_OAUTH_TOKEN"
    assert f"--key-as PATH: claude takes its key in {known}" in wrong.err
    alone = fleet("accounts", "add", "x", "--coder", "claude", "--key-as", oauth)
    assert alone.code == 2 and "--key-as needs --key-env" in alone.err
    assert read_json(fleet, "accounts") == []  # a bad input changes nothing
    ok(fleet("accounts", "add", "x", "--coder", "claude", "--key-env", "K", "--key-as", oauth))
    [row] = read_json(fleet, "accounts")
    assert (row["key_env"], row["key_as"]) == ("K", oauth)


# -- a usage limit moves the task ------------------------------------------------------------


@pytest.mark.cli
@pytest.mark.parametrize("name", list(FLAVOURS))
def test_a_usage_limit_moves_the_task_to_the_other_account(
    name: str, work: Path, fleet: Fleet, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flavour = FLAVOURS[name]
    use_accounts(monkeypatch, flavour)
    resets_at = int(time.time()) + 3600
    with (
        mock_for(name, Script(mode="usage_limit", resets_at=resets_at)) as limited,
        mock_for(name, ok_script()) as fine,
    ):
        add_account(fleet, flavour, "first", limited, tmp_path / "first", flavour.key_as)
        add_account(fleet, flavour, "second", fine, tmp_path / "second")
        task_id = create(
            fleet, "write hello", "--coder", name, "--cwd", str(work), "--max-attempts", "1"
        )
        run_supervisor(home, "--until-idle")
        assert credential(limited) == f"Bearer {KEYS['FIRST_KEY']}"  # Claude: OAuth
        assert credential(fine).endswith(KEYS["SECOND_KEY"])
    task = task_of(home, task_id)
    assert task.status == "closed", task.status_reason
    first, second = task.attempts
    assert (first["account"], first["outcome"], first["counted"]) == (
        "first",
        "rate_limited",
        False,
    )
    assert (second["account"], second["outcome"]) == ("second", "success")
    assert (work / HELLO_NAME).read_text() == HELLO_TEXT
    reset = parse_time(first["resets_at"])
    assert resets_at <= reset <= resets_at + flavour.reset_slack
    accounts = accounts_by_name(fleet)
    assert accounts["first"]["status"] == f"limited until {first['resets_at']}"
    assert accounts["first"]["limited_until"] == first["resets_at"]
    assert accounts["second"]["status"] == "available"
    assert_ledger(fleet, home)


# -- an early warning stops dispatches -------------------------------------------------------


@pytest.mark.cli
@pytest.mark.cli
@pytest.mark.parametrize("name", list(FLAVOURS))
def test_an_early_warning_stops_dispatches_to_the_warned_account(
    name: str, work: Path, fleet: Fleet, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude says it in its output as it runs; Codex in its rollout file, read at the end."""
    flavour = FLAVOURS[name]
    use_accounts(monkeypatch, flavour)
    resets_at = int(time.time()) + 3600
    with (
        mock_for(name, Script(mode="warn", utilization=0.95, resets_at=resets_at)) as warned,
        mock_for(name, ok_script()) as fine,
    ):
        add_account(fleet, flavour, "first", warned, tmp_path / "first", flavour.key_as)
        add_account(fleet, flavour, "second", fine, tmp_path / "second")
        first = create(fleet, "write hello", "--coder", name, "--cwd", str(work))
        second = create(fleet, "again", "--coder", name, "--cwd", str(work), "--deps", first)
        run_supervisor(home, "--until-idle")
    accounts = [a["account"] for t in (first, second) for a in task_of(home, t).attempts]
    assert accounts == ["first", "second"]  # by name while equal, then away from the warning
    assert {task_of(home, t).status for t in (first, second)} == {"closed"}
    state = accounts_by_name(fleet)["first"]
    assert state["status"] == "near its limit (95%)"
    assert state["utilization"] == 0.95 and state["utilization_resets_at"] == iso(resets_at)
    ok(fleet("accounts", "disable", "second"))
    third = create(fleet, "once more", "--coder", name, "--cwd", str(work))
    run_supervisor(home, "--once")
    [row] = [r for r in read_json(fleet, "tasks") if r["id"] == third]
    assert row["status"] == "open"
    assert row["why"] == "waits: first is near its limit (95%); second is disabled"
    assert_ledger(fleet, home)


# -- the ledger ------------------------------------------------------------------------------


def all_tasks(home: Path) -> list[Task]:
    store = Store.open(home)
    try:
        store.cache.sync()
        return [Task.from_dict(body) for body in store.cache.select(None)]
    finally:
        store.close()


def assert_ledger(fleet: Fleet, home: Path) -> None:
    """`fleet usage --by coder|account|day`: each line and the total are the sums of the attempts'
    records (the ledger shows cost to the micro-dollar and time to the millisecond)."""
    attempts = [a for task in all_tasks(home) for a in task.attempts]
    assert attempts
    keys = {
        "coder": lambda a: a["coder"],
        "account": lambda a: a["account"],
        "day": attempt_day,
    }
    for by, key in keys.items():
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for attempt in attempts:
            groups[key(attempt)].append(attempt)
        report = read_json(fleet, "usage", "--by", by)
        lines = {line["key"]: figures(line) for line in report["lines"]}
        assert lines == {k: sums(group) for k, group in groups.items()}, by
        assert figures(report["total"]) == sums(attempts), by


def figures(line: dict[str, Any]) -> dict[str, Any]:
    names = ("attempts", *TOKEN_KINDS, "cost_usd", "seconds")
    return {name: line[name] for name in names}


def sums(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"attempts": len(attempts)}
    for kind in TOKEN_KINDS:
        out[kind] = sum(a["usage"][kind] for a in attempts)
    cost = sum(a["usage"]["cost_usd"] or 0.0 for a in attempts)
    out["cost_usd"] = pytest.approx(cost, abs=1e-6)
    out["seconds"] = pytest.approx(sum(a["seconds"] for a in attempts), abs=1e-3)
    return out
