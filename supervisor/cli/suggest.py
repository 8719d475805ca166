"""Usage errors in fleet's style (one `fleet:` line, a hint, exit 2), with did-you-mean."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable

import click


def nearest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    near = nearest(word, choices)
    return f"did you mean {' or '.join(repr(c) for c in near)}?" if near else ""


class UnknownCommand(click.UsageError):
    def __init__(self, name: str, names: list[str], ctx: click.Context) -> None:
        super().__init__(f"{ctx.command_path} has no command {name!r}", ctx=ctx)
        self.command_name = name
        self.names = names


def unknown_command(ctx: click.Context, name: str, names: list[str]) -> None:
    """Refuse a subcommand the group does not have (the hint names the nearest ones)."""
    raise UnknownCommand(name, names, ctx)


def show_usage_error(exc: click.UsageError) -> int:
    """Print a click usage error as fleet prints its own: `fleet: ...` and a hint. Exit 2."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click shows it
        exc.show()
        return 2
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else "fleet"
    message = exc.format_message()
    hint = f"`{path} --help` shows its usage"
    name = getattr(exc, "command_name", None)
    if isinstance(name, str):  # an unknown subcommand
        names = getattr(exc, "names", None)
        if names is None and ctx is not None and isinstance(ctx.command, click.Group):
            names = ctx.command.list_commands(ctx)
        message = f"{path} has no command {name!r}"
        suggestion = did_you_mean(name, names or [])
        hint = (f"{suggestion} " if suggestion else "") + f"`{path} --help` lists the commands"
    elif isinstance(exc, click.exceptions.NoSuchOption):
        message = f"{path} has no option {exc.option_name!r}"
        if exc.possibilities:
            hint = f"did you mean {' or '.join(repr(p) for p in exc.possibilities)}? " + hint
    print(f"fleet: {_sentence(message)}", file=sys.stderr)
    print(f"  hint: {hint}", file=sys.stderr)
    return 2


def _sentence(text: str) -> str:
    return text.strip().rstrip(".")
