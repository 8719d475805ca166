"""The `fleet` command: a click group whose subcommands load only when they run.

Exit codes: 0 success, 1 failure, 2 bad input (nothing was changed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from supervisor.cli.output import json_text, report

# name -> "module:attribute"; each module holds the commands of one concern.
COMMANDS = {
    "init": "supervisor.cli.store:init",
    "bd": "supervisor.cli.bd:bd",
    "config": "supervisor.cli.store:config",
    "log": "supervisor.cli.store:log",
    "supervisor": "supervisor.cli.run:supervisor",
    "tasks": "supervisor.cli.run:tasks",
    "task": "supervisor.cli.run:task",
    "kill": "supervisor.cli.run:kill",
    "retry": "supervisor.cli.run:retry",
    "pause": "supervisor.cli.run:pause",
    "resume": "supervisor.cli.run:resume",
    "demo": "supervisor.cli.run:demo",
    "coders": "supervisor.cli.coders:coders",
    "accounts": "supervisor.cli.accounts:accounts",
    "usage": "supervisor.cli.accounts:usage",
    "worktrees": "supervisor.cli.worktrees:worktrees",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*COMMANDS, *super().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command: click.Command = getattr(import_module(module), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FLEET_HOME",
    help="The fleet home (default $FLEET_HOME or ~/.fleet).",
)
@click.version_option(package_name="fleet", prog_name="fleet")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Run a fleet of coding agents from one git-backed task queue.

    \b
    fleet bd create "Fix the login bug" --coder claude
    fleet supervisor start
    fleet tasks
    """
    ctx.obj = home


def open_store(ctx: click.Context) -> Any:
    from supervisor.store.store import Store

    return Store.open(ctx.find_root().obj)


def emit_json(data: Any) -> None:
    click.echo(json_text(data))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)


def color(text: str, fg: str) -> str:
    """Colour only on a terminal, never with NO_COLOR."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return click.style(text, fg=fg)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("fleet: aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except Exception as exc:
        return report(exc)
    return 0
