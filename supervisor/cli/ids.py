"""Task ids on the command line: every command that takes one resolves it here, so a unique
start of an id (`fleet task 4amh`) works everywhere and a wrong one gets its did-you-mean."""

from __future__ import annotations

from typing import Any

import click


class TaskIdType(click.ParamType):  # type: ignore[type-arg]
    """A task id, a unique start of one, or of its hash; converted to the whole id."""

    name = "ID"

    def __init__(self, known_only: bool = True) -> None:
        self.known_only = known_only  # False: a whole id the store lacks passes (a dangling link)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if ctx is None or ctx.resilient_parsing or value in ("", None):
            return "" if value is None else str(value)
        from supervisor.errors import NotFound
        from supervisor.model import ID_PATTERN

        try:
            return resolve(ctx, str(value))
        except NotFound:
            if self.known_only or not ID_PATTERN.match(str(value)):
                raise
            return str(value)


TASK_ID = TaskIdType()
LINKED_ID = TaskIdType(known_only=False)


def resolve(ctx: click.Context, text: str, what: str = "task") -> str:
    from supervisor.cli.main import open_store
    from supervisor.store.lookup import resolve as lookup

    return lookup(open_store(ctx), text, what)


class IdGroup(click.Group):
    """A group whose argument is a task id (`fleet task ID log`): it keeps the arguments it
    passes on, so `help_asked` can tell that its subcommand's `--help` follows."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        own = {f for p in self.params if isinstance(p, click.Option) for f in p.opts}
        if args and not args[0].startswith("-"):  # `fleet task ID --json`: the group's option
            flags = [a for a in args[1:2] if a in own]
            args = [*flags, args[0], *args[1 + len(flags) :]]
        rest = super().parse_args(ctx, args)
        ctx.meta["fleet.rest"] = [*getattr(ctx, "_protected_args", []), *ctx.args]
        return rest


def help_asked(ctx: click.Context) -> bool:
    """Whether `--help` follows in the arguments a group passes on (`fleet task X log --help`)."""
    rest = list(ctx.meta.get("fleet.rest", []))
    end = rest.index("--") if "--" in rest else len(rest)
    return any(a in ("-h", "--help") for a in rest[:end])
