"""`bd create`'s click-free parse agrees with click, or leaves the arguments to click."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from supervisor.cli.bd import create as create_command
from supervisor.cli.create import parse
from tests.conftest import REPO


def click_params(args: list[str]) -> dict[str, Any] | None:
    """What click passes the command for `args`, or None when click refuses them."""
    try:
        ctx = create_command.make_context("create", list(args), resilient_parsing=False)
    except (click.ClickException, click.exceptions.Exit):
        return None
    return dict(ctx.params)


def same(ours: dict[str, Any], theirs: dict[str, Any] | None) -> bool:
    """Equal parameters (`nan` equals itself here: both parsers must give it)."""
    return theirs is not None and repr(sorted(ours.items())) == repr(sorted(theirs.items()))


PLAIN = [
    [],
    ["Fix the login bug"],
    ["Fix it", "-p", "1", "--coder", "claude"],
    ["--title", "t", "-d", "details", "-t", "bug", "-l", "a", "-l", "b", "--json"],
    ["t", "-p0", "-lone", "--priority=4", "--label=two", "--deps", "fl-1,blocks:fl-2"],
    ["t", "--max-seconds", "1.5", "--max-tokens", "10", "--max-cost", "0.5"],
    ["t", "--max-attempts", "100", "--cwd", "/tmp", "--command", "make test", "--coder", "shell"],
    ["--", "-a title that starts with a dash"],
    ["-", "--model", "-"],
    ["t", "--parent", "fl-1", "--acceptance", "a", "--design", "d", "--notes", "n"],
    ["t", "--role", "dev", "--account", "work", "-d="],
    ["", "--description", ""],
]
REFUSED = [
    ["--help"],
    ["-h"],
    ["a", "b"],
    ["t", "-p", "5"],
    ["t", "-p", "-1"],
    ["t", "--priority=x"],
    ["t", "--max-tokens", "0"],
    ["t", "--max-attempts", "101"],
    ["t", "--max-cost", "cheap"],
    ["t", "--json=yes"],
    ["t", "--desc", "abbreviated"],
    ["t", "-x"],
    ["t", "-p"],
    ["t", "--home", "/tmp"],
]


@pytest.mark.parametrize("args", PLAIN)
def test_plain_arguments_parse_without_click_exactly_as_click_does(args: list[str]) -> None:
    ours = parse(args)
    assert ours is not None
    assert same(ours, click_params(args))


@pytest.mark.parametrize("args", REFUSED)
def test_what_click_must_answer_is_left_to_click(args: list[str]) -> None:
    assert parse(args) is None


WORDS = [
    *("-p", "--priority", "-l", "--label", "-d", "-t", "--title", "--json", "--max-tokens"),
    *("--max-cost", "--max-attempts", "--coder", "--", "-", "", "x", "two words", "0", "3"),
    *("7", "-1", "1.5", "nan", "-p2", "-p9", "--priority=1", "--json=1", "-lx", "--label=", "-z"),
    *("--nope", "-h", "--deps=a,b", "=", "-d=", "--title=t", " 2 ", "1_0"),
]


def test_random_arguments_parse_as_click_or_go_to_click() -> None:
    rng = random.Random(20261123)
    fast = 0
    for _ in range(3000):
        args = [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]
        ours = parse(args)
        if ours is not None:
            fast += 1
            assert same(ours, click_params(args)), args
    assert fast > 300  # the fast path is not vacuous


def test_bd_create_does_not_load_click(home: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from supervisor.cli.entry import main\n"
        "code = main(['bd', 'create', 'no click', '-p', '1', '-l', 'x'])\n"
        "assert 'click' not in sys.modules, 'click was imported'\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    shown = subprocess.run(
        [sys.executable, "-m", "supervisor", "bd", "show", task_id, "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"title": "no click"' in shown.stdout
    assert '"priority": 1' in shown.stdout


def test_a_global_home_option_reaches_the_fast_path(fleet: Any, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    made = fleet("--home", str(other), "bd", "create", "elsewhere")
    assert made.code == 0, made.err
    listed = fleet(f"--home={other}", "bd", "list", "--json")
    assert made.out.strip() in listed.out
    assert fleet("bd", "list", "--json").out.strip() == "[]"


def test_a_home_that_is_a_file_is_refused_by_click(fleet: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = fleet("--home", str(tmp_path / "a-file"), "bd", "create", "x")
    assert result.code == 2
    assert "is a file" in result.err


def test_errors_on_the_fast_path_are_reported_like_any_other(fleet: Any, home: Path) -> None:
    result = fleet("bd", "create", "   ")
    assert (result.code, result.out) == (2, "")
    assert "fleet: a task needs a title" in result.err
    assert "hint:" in result.err
    assert fleet("bd", "create", "t", "--deps", "fl-zzzz").code == 2
