"""`fleet config show|get|set`: defaults, validation naming valid choices, a commit per change."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

from supervisor.config import CoderSettings, Config
from supervisor.store.store import user_actor
from tests.support.store_checks import commits, git, head, message

Fleet = Any  # the `fleet` fixture: fleet(*args) -> Result

# The documented defaults (docs/configuration.md); the configuration has more settings.
DEFAULTS = {
    "id_prefix": "fl",
    "max_concurrent": 3,
    "coder": "claude",
    "coders": {},
    "isolation": "worktree",
    "max_attempts": 3,
    "max_seconds": 3600.0,
    "stall_seconds": 600.0,
    "grace_seconds": 10.0,
    "backoff_seconds": 10.0,
    "backoff_max_seconds": 600.0,
    "checkpoint_seconds": 30.0,
    "paused": False,
}
VALID_KEYS = "valid keys: id_prefix, max_concurrent, coder, coders.<name>.max_concurrent, "


def ok(fleet: Fleet, *args: str) -> Result:
    result: Result = fleet(*args)
    assert result.code == 0, f"fleet {' '.join(args)}: {result.err}"
    return result


def stored(home: Path) -> dict[str, Any]:
    return tomllib.loads(git(home, "cat-file", "blob", "refs/heads/main:config.toml"))


def show(fleet: Fleet) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(ok(fleet, "config", "show", "--json").out)
    return shown


def test_show_gives_the_defaults(fleet: Fleet, home: Path) -> None:
    shown = show(fleet)
    assert {k: shown[k] for k in DEFAULTS} == DEFAULTS
    assert set(shown) == set(Config.model_fields)
    as_toml = tomllib.loads(ok(fleet, "config", "show").out)
    assert as_toml == {k: v for k, v in shown.items() if v is not None}
    assert ok(fleet, "config").out == ok(fleet, "config", "show").out
    assert head(home) is None  # reading the defaults writes nothing


@pytest.mark.parametrize(
    ("key", "printed"),
    [
        ("max_concurrent", "3"),
        ("coder", "claude"),
        ("isolation", "worktree"),
        ("paused", "false"),
        ("max_seconds", "3600"),
        ("coders", "{}"),
        ("coders.shell.max_concurrent", "null"),
        ("coders.codex.model", ""),
    ],
)
def test_get_prints_one_value(fleet: Fleet, key: str, printed: str) -> None:
    assert ok(fleet, "config", "get", key).out == printed + "\n"


def test_set_changes_values_in_one_commit(fleet: Fleet, home: Path) -> None:
    defaults = show(fleet)
    result = ok(fleet, "config", "set", "max_concurrent=8", "isolation=none", "paused=true")
    assert result.out == "config updated: max_concurrent=8, isolation=none, paused=true\n"
    assert len(commits(home)) == 1
    summary, trailers = message(home, commits(home)[0])
    assert summary == "config: max_concurrent=8, isolation=none, paused=true"
    assert trailers == {"Fleet-Event": ["config_changed"], "Fleet-Actor": [user_actor()]}
    assert stored(home) == {"max_concurrent": 8, "isolation": "none", "paused": True}
    assert show(fleet) == {**defaults, "max_concurrent": 8, "isolation": "none", "paused": True}
    assert ok(fleet, "config", "get", "max_concurrent").out == "8\n"


def test_every_change_is_one_commit_and_no_change_is_none(fleet: Fleet, home: Path) -> None:
    ok(fleet, "config", "set", "max_attempts=5")
    ok(fleet, "config", "set", "backoff_seconds=2.5")
    ok(fleet, "config", "set", "coders.claude.model=claude opus")
    assert len(commits(home)) == 3
    before = head(home)
    ok(fleet, "config", "set", "max_attempts=5", "backoff_seconds=2.5")
    assert head(home) == before
    assert stored(home) == {
        "max_attempts": 5,
        "backoff_seconds": 2.5,
        "coders": {"claude": {"model": "claude opus"}},
    }
    summaries = [message(home, c)[0] for c in commits(home)]
    assert summaries == [
        "config: coders.claude.model=claude opus",
        "config: backoff_seconds=2.5",
        "config: max_attempts=5",
    ]
    assert git(home, "diff-tree", "--no-commit-id", "--name-only", "-r", commits(home)[0]) == (
        "config.toml\n"
    )


def test_per_coder_caps(fleet: Fleet, home: Path) -> None:
    ok(fleet, "config", "set", "coders.shell.max_concurrent=2")
    assert ok(fleet, "config", "get", "coders.shell.max_concurrent").out == "2\n"
    assert ok(fleet, "config", "get", "coders.codex.max_concurrent").out == "null\n"
    shown = show(fleet)["coders"]
    assert list(shown) == ["shell"]
    assert shown["shell"] == {**CoderSettings().model_dump(), "max_concurrent": 2}
    assert stored(home) == {"coders": {"shell": {"max_concurrent": 2}}}
    ok(fleet, "config", "set", "coders.codex.max_concurrent=1", "max_concurrent=4")
    assert stored(home) == {
        "coders": {"shell": {"max_concurrent": 2}, "codex": {"max_concurrent": 1}},
        "max_concurrent": 4,
    }
    assert "[coders.shell]\nmax_concurrent = 2" in ok(fleet, "config", "show").out


def test_the_id_prefix_names_new_tasks(fleet: Fleet) -> None:
    ok(fleet, "config", "set", "id_prefix=web")
    task_id = ok(fleet, "bd", "create", "Prefixed").out.strip()
    assert re.fullmatch(r"web-[0-9a-z]{4}", task_id), task_id


def refused(fleet: Fleet, home: Path, args: list[str], *wanted: str) -> str:
    before = head(home)
    result: Result = fleet(*args)
    assert result.code == 2, result
    for text in wanted:
        assert text in result.err, (text, result.err)
    assert "hint: " in result.err
    assert head(home) == before
    return result.err


@pytest.mark.parametrize(
    "key", ["nope", "coders", "coders.shell", "coders.shell.bogus", "a.b", "max_concurrent.x"]
)
def test_an_unknown_key_is_refused_with_the_valid_keys(fleet: Fleet, home: Path, key: str) -> None:
    ok(fleet, "config", "set", "max_concurrent=4")
    err = refused(fleet, home, ["config", "set", f"{key}=1"], f"unknown config key {key!r}")
    assert VALID_KEYS not in err and "`fleet config show` lists every key" in err
    if key not in ("coders", "coders.shell"):  # tables and their entries read back whole
        refused(fleet, home, ["config", "get", key], f"unknown config key {key!r}")


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("max_concurent", "max_concurrent"),
        ("isolaton", "isolation"),
        ("coders.shell.modle", "coders.<name>.model"),
        ("max_concurrent.x", "max_concurrent"),
    ],
)
def test_an_unknown_key_names_the_nearest_ones(
    fleet: Fleet, home: Path, key: str, meant: str
) -> None:
    for verb, arg in (("set", f"{key}=1"), ("get", key)):
        err = refused(fleet, home, ["config", verb, arg], f"unknown config key {key!r}")
        hint = err.split("hint: ", 1)[1]
        assert f"did you mean {meant!r}" in hint, err
        assert hint.count("'") <= 8, "a few keys, not every one"


@pytest.mark.parametrize(
    ("pair", "problem", "valid"),
    [
        (
            "isolation=copy",
            "isolation: Input should be 'worktree' or 'none'",
            "'worktree' or 'none'",
        ),
        (
            "max_concurrent=0",
            "max_concurrent: Input should be greater than or equal to 1",
            "max_concurrent takes an integer >= 1 and <= 1024",
        ),
        ("max_concurrent=many", "valid integer", "max_concurrent takes an integer >= 1"),
        ("max_seconds=-5", "greater than 0", "max_seconds takes a number > 0"),
        ("paused=maybe", "valid boolean", "paused takes true or false"),
        ("id_prefix=Web", "should match pattern", "id_prefix takes a string matching"),
        (
            "coders.shell.max_concurrent=0",
            "coders.shell.max_concurrent: Input should be greater than or equal to 1",
            "coders.shell.max_concurrent takes an integer >= 1",
        ),
        ("coder=robot", "unknown coder 'robot'", "known coders: claude, codex, gemini"),
        ("coders.robot.max_concurrent=1", "unknown coder 'robot'", "known coders: claude"),
        ("max_concurrent", "'max_concurrent' is not KEY=VALUE", "max_concurrent=4"),
    ],
)
def test_a_bad_value_is_refused_with_the_valid_choices(
    fleet: Fleet, home: Path, pair: str, problem: str, valid: str
) -> None:
    ok(fleet, "config", "set", "max_concurrent=4")
    refused(fleet, home, ["config", "set", pair], problem, valid)
    refused(fleet, home, ["config", "set", "max_attempts=7", pair], problem)
    assert stored(home) == {"max_concurrent": 4}


def test_get_of_an_unknown_coder_is_refused(fleet: Fleet, home: Path) -> None:
    refused(fleet, home, ["config", "get", "coders.robot.model"], "unknown coder 'robot'")
