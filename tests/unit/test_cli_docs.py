"""docs/commands.md and the command line agree, read from the live click tree (so a command added
anywhere is caught): every command and option is documented, nothing documented is missing, every
`--help` works, and every command has the `--json` the page promises."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import REPO

from supervisor.cli.main import cli

DOCS = REPO / "docs" / "commands.md"
GLOBAL = {"--home", "--help", "-h"}
ROW = re.compile(r"^\|\s*`(fleet [^`]*)`\s*\|")
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
# `fleet task ID log`: the id comes between the group and its subcommand
PLACEHOLDER_IN_PATH = {"ID"}
JSON_HELP_MISSING = {("tasks",)}  # its --json has no help text yet


def commands() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command a user can run: leaves, and groups that run without a subcommand."""

    def walk(cmd: click.Command, path: tuple[str, ...], ctx: click.Context) -> Iterator[Any]:
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:
                yield path, cmd
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, name
                if not sub.hidden:
                    yield from walk(sub, (*path, name), click.Context(sub, ctx, info_name=name))
        else:
            yield path, cmd

    yield from walk(cli, (), click.Context(cli, info_name="fleet"))


def flags(cmd: click.Command) -> dict[str, click.Option]:
    return {
        flag: p
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden
        for flag in p.opts
    }


def documented() -> dict[tuple[str, ...], set[str]]:
    """Command path -> the flags its row shows, for every row of a command table."""
    out: dict[tuple[str, ...], set[str]] = {}
    for line in DOCS.read_text().splitlines():
        match = ROW.match(line)
        if not match:
            continue
        words = match.group(1).split()[1:]
        path: list[str] = []
        for word in words:
            if re.fullmatch(r"[a-z][a-z-]*", word):
                path.append(word)
            elif word in PLACEHOLDER_IN_PATH and path == ["task"]:
                continue
            else:
                break
        key = tuple(path)
        assert key not in out, f"{match.group(1)}: documented twice"
        out[key] = set(FLAG.findall(match.group(1)))
    return out


ALL = list(commands())
DOCUMENTED = documented()


def test_every_command_is_documented_and_nothing_else() -> None:
    live = {path for path, _ in ALL}
    assert live - set(DOCUMENTED) == set(), "commands missing from docs/commands.md"
    assert set(DOCUMENTED) - live == set(), "docs/commands.md documents commands that do not exist"


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) or "fleet" for p, _ in ALL])
def test_every_option_is_documented_and_exists(path: tuple[str, ...], cmd: click.Command) -> None:
    shown = DOCUMENTED.get(path, set())
    options = flags(cmd)
    for option in {id(o): o for o in options.values()}.values():
        longs = [f for f in option.opts if f.startswith("--")] or option.opts
        assert set(longs) & shown, f"fleet {' '.join(path)}: {longs} is not in docs/commands.md"
    extra = shown - set(options) - GLOBAL
    assert not extra, f"fleet {' '.join(path)}: documented but not accepted: {sorted(extra)}"


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) or "fleet" for p, _ in ALL])
def test_every_help_works_and_json_is_there(
    fleet: Any, path: tuple[str, ...], cmd: click.Command
) -> None:
    args = list(path)
    if args[:1] == ["task"]:
        args.insert(1, "no-such-id")  # --help works whatever the id
    result = fleet(*args, "--help")
    assert result.code == 0, result
    assert result.out.startswith("Usage: fleet"), result.out
    assert "--json" in flags(cmd), f"fleet {' '.join(path)} has no --json"
    assert "--json" in result.out
    if path not in JSON_HELP_MISSING:
        assert flags(cmd)["--json"].help, f"fleet {' '.join(path)}: --json has no help text"


def test_the_top_level_help_lists_every_command(fleet: Any) -> None:
    out = fleet("--help").out
    for path, _ in ALL:
        if len(path) == 1:
            assert re.search(rf"^\s+{path[0]}\b", out, re.M), path


def test_limits_are_spelled_alike() -> None:
    for path, cmd in ALL:
        for flag, option in flags(cmd).items():
            if flag in ("-n", "--limit"):
                assert set(option.opts) == {"-n", "--limit"}, (path, option.opts)


def test_the_docs_rows_are_valid_markdown_tables() -> None:
    text = DOCS.read_text()
    for line in text.splitlines():
        if ROW.match(line):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            assert len(cells) == 2, line


def test_json_output_parses_for_reads(fleet: Any) -> None:
    for args in (["bd", "list"], ["tasks"], ["log"], ["usage"], ["config"], ["accounts"]):
        result = fleet(*args, "--json")
        assert result.code == 0, result
        json.loads(result.out)


def test_docs_page_exists() -> None:
    assert isinstance(DOCS, Path) and DOCS.is_file()
