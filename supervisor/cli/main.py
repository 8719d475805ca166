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

from supervisor.cli.output import clean, json_text, report

# name -> "module:attribute"; each module holds the commands of one concern.
COMMANDS = {
    "init": "supervisor.cli.store:init",
    "bd": "supervisor.cli.bd:bd",
    "config": "supervisor.cli.store:config",
    "log": "supervisor.cli.store:log",
    "supervisor": "supervisor.cli.run:supervisor",
    "tasks": "supervisor.cli.tasks:tasks",
    "task": "supervisor.cli.task:task",
    "kill": "supervisor.cli.run:kill",
    "cancel": "supervisor.cli.run:cancel",
    "retry": "supervisor.cli.run:retry",
    "pause": "supervisor.cli.run:pause",
    "resume": "supervisor.cli.run:resume",
    "demo": "supervisor.cli.run:demo",
    "coders": "supervisor.cli.coders:coders",
    "accounts": "supervisor.cli.accounts:accounts",
    "usage": "supervisor.cli.accounts:usage",
    "route": "supervisor.cli.plan:route",
    "plan": "supervisor.cli.plan:plan",
    "roles": "supervisor.cli.roles:roles",
    "events": "supervisor.cli.events:events",
    "emit": "supervisor.cli.events:emit",
    "approve": "supervisor.cli.events:approve",
    "reject": "supervisor.cli.events:reject",
    "dashboard": "supervisor.cli.dashboard:dashboard",
    "attach": "supervisor.cli.attach:attach",
    "doctor": "supervisor.cli.doctor:doctor",
    "store": "supervisor.cli.upkeep:store",
    # governance
    "eval": "supervisor.cli.governance:eval_cmd",
    "risk": "supervisor.cli.governance:risk_cmd",
    "quarantine": "supervisor.cli.governance:quarantine_cmd",
    "release": "supervisor.cli.governance:release_cmd",
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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        from supervisor.cli.suggest import unknown_command

        name = args[0] if args else ""
        known = ctx.resilient_parsing or name.startswith("-") or self.get_command(ctx, name)
        if not known:
            unknown_command(ctx, name, self.list_commands(ctx))
        return super().resolve_command(ctx, args)


def _home(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """Refuse a blank home: an unset variable in a script must not make the cwd the home."""
    from click.core import ParameterSource

    from supervisor.store.home import check_value

    from_env = ctx.get_parameter_source("home") == ParameterSource.ENVIRONMENT
    check_value(value, "FLEET_HOME" if from_env else "--home")
    return None if value is None else Path(value)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    callback=_home,
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

    root = ctx.find_root()
    if "fleet.store" not in root.meta:  # one store per command line, shared by its id lookups
        root.meta["fleet.store"] = Store.open(root.obj)
    return root.meta["fleet.store"]


def emit_json(data: Any) -> None:
    click.echo(json_text(data))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain table; every cell but fleet's own colouring is `clean`ed (one line, no escapes)."""
    from tabulate import tabulate

    safe = [[c if isinstance(c, Styled) else clean(str(c)) for c in row] for row in rows]
    return tabulate(safe, headers=headers, tablefmt="plain", disable_numparse=True)


class Styled(str):
    """Text fleet coloured itself: its escape sequences are meant."""


def color(text: str, fg: str) -> str:
    """Colour only on a terminal, never with NO_COLOR."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return clean(text)
    return Styled(click.style(clean(text), fg=fg))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="fleet", standalone_mode=False
        )
    except click.exceptions.Abort:
        click.echo("fleet: aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        from supervisor.cli.suggest import show_usage_error

        return show_usage_error(exc)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:
        return report(exc)
    return 0
