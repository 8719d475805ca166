"""`fleet log`: the audit trail read back from the store's commits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

from supervisor.model import parse_time
from supervisor.queue import mutations as queue
from supervisor.store.store import Store, user_actor
from tests.support.store_checks import commits, git, head

Fleet = Any  # the `fleet` fixture: fleet(*args) -> Result


def ok(fleet: Fleet, *args: str) -> Result:
    result: Result = fleet(*args)
    assert result.code == 0, f"fleet {' '.join(args)}: {result.err}"
    return result


def log(fleet: Fleet, *args: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(ok(fleet, "log", *args, "--json").out)
    return entries


@pytest.fixture
def story(fleet: Fleet, home: Path) -> dict[str, str]:
    """A short history: two tasks made, linked, one updated by the supervisor, both closed."""
    a = ok(fleet, "bd", "create", "Write the parser").out.strip()
    b = ok(fleet, "bd", "create", "Test the parser", "--deps", a).out.strip()
    store = Store.open(home)
    queue.update(store, a, {"priority": 0}, actor="host:1234:0")
    store.close()
    ok(fleet, "config", "set", "max_concurrent=2")
    ok(fleet, "bd", "close", a, b, "--reason", "done")
    return {"a": a, "b": b}


def test_entries_say_when_who_what_and_which_task(
    fleet: Fleet, home: Path, story: dict[str, str]
) -> None:
    a, b = story["a"], story["b"]
    me = user_actor()
    entries = log(fleet)
    assert [(e["actor"], e["event"], e["summary"], e["tasks"]) for e in entries] == [
        (me, "closed", f"close {a} {b}: done", [a, b]),
        (me, "config_changed", "config: max_concurrent=2", []),
        ("host:1234:0", "updated", f"update {a}: priority", [a]),
        (me, "created", f"create {b}: Test the parser", [b]),
        (me, "created", f"create {a}: Write the parser", [a]),
    ]
    assert [e["commit"] for e in entries] == commits(home)
    assert set(entries[0]) == {"commit", "time", "actor", "event", "summary", "tasks", "reasons"}
    for entry in entries:
        stamp = int(git(home, "log", "-1", "--format=%ct", entry["commit"]))
        assert parse_time(entry["time"]) == stamp
        assert abs(stamp - time.time()) < 120
        assert entry["time"].endswith("Z")


def test_task_filter_keeps_what_touched_that_task(fleet: Fleet, story: dict[str, str]) -> None:
    a, b = story["a"], story["b"]
    assert [e["summary"] for e in log(fleet, "--task", a)] == [
        f"close {a} {b}: done",
        f"update {a}: priority",
        f"create {a}: Write the parser",
    ]
    assert [e["event"] for e in log(fleet, "--task", b)] == ["closed", "created"]
    assert [e["event"] for e in log(fleet, "--task", b, "-n", "1")] == ["closed"]


def test_n_limits_to_the_newest(fleet: Fleet, story: dict[str, str]) -> None:
    assert [e["event"] for e in log(fleet, "-n", "2")] == ["closed", "config_changed"]
    assert len(log(fleet, "-n", "0")) == 5
    assert len(log(fleet)) == 5
    for n in range(25):
        ok(fleet, "config", "set", f"max_attempts={n % 9 + 1}")
    assert len(log(fleet)) == 20  # the default
    assert len(log(fleet, "-n", "0")) == 30


def test_the_table(fleet: Fleet, story: dict[str, str]) -> None:
    a, b = story["a"], story["b"]
    lines = ok(fleet, "log").out.splitlines()
    assert lines[0].split() == ["WHEN", "(UTC)", "ACTOR", "EVENT", "TASK", "WHAT"]
    assert len(lines) == 6
    closed = lines[1].split()
    assert closed[2:] == [user_actor(), "closed", f"{a},", b, "close", a, f"{b}:", "done"]
    assert lines[3].split()[2:6] == ["host:1234:0", "updated", a, "update"]


def test_an_empty_store_has_no_history(fleet: Fleet, home: Path) -> None:
    assert ok(fleet, "log").out == "no history yet\n"
    assert log(fleet) == []
    assert head(home) is None


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["log", "--task", "NOT-AN-ID"], "task id 'NOT-AN-ID' is not valid"),
        (["log", "--task", "fl-zzzz"], "task fl-zzzz does not exist"),
        (["log", "-n", "-1"], "-1 is not in the range x>=0"),
    ],
)
def test_bad_input_is_refused(
    fleet: Fleet, home: Path, story: dict[str, str], args: list[str], problem: str
) -> None:
    before = head(home)
    result: Result = fleet(*args)
    assert result.code == 2
    assert problem in result.err
    assert head(home) == before


def test_an_unknown_task_in_an_empty_store_is_refused(fleet: Fleet) -> None:
    result: Result = fleet("log", "--task", "fl-zzzz")
    assert result.code == 2 and "task fl-zzzz does not exist" in result.err
