"""`fleet init`, `fleet config` and `fleet log`: the home, its settings and its audit trail."""

from __future__ import annotations

import click

from supervisor.cli.main import emit_json, open_store, table


@click.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the fleet home (every command also does this on first use)."""
    store = open_store(ctx)
    click.echo(f"fleet home: {store.home}")


@click.group(invoke_without_command=True)
@click.pass_context
def config(ctx: click.Context) -> None:
    """Show or change the configuration (config.toml in the store; every change is a commit)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(config_show)


@config.command("show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """The effective configuration, defaults included."""
    from supervisor import config as cfg
    from supervisor.queue import configure

    current = configure.current(open_store(ctx))
    if as_json:
        emit_json(current.model_dump())
    else:
        click.echo(cfg.show(current), nl=False)


@config.command("get")
@click.argument("key")
@click.pass_context
def config_get(ctx: click.Context, key: str) -> None:
    """One value, e.g. `fleet config get max_concurrent`."""
    import json

    from supervisor import config as cfg
    from supervisor.queue import configure

    value = cfg.get(configure.current(open_store(ctx)), key)
    click.echo(value if isinstance(value, str) else json.dumps(value))


@config.command("set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.pass_context
def config_set(ctx: click.Context, pairs: tuple[str, ...]) -> None:
    """Change settings in one commit, e.g. `fleet config set max_concurrent=4`."""
    from supervisor.queue import configure

    configure.set_values(open_store(ctx), list(pairs))
    click.echo("config updated: " + ", ".join(pairs))


@click.command()
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many entries (0: all).",
)
@click.option("--task", "task_id", default="", help="Only what happened to this task.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--verify", is_flag=True, help="Prove the history is the one fleet wrote.")
@click.pass_context
def log(ctx: click.Context, limit: int, task_id: str, as_json: bool, verify: bool) -> None:
    """The audit trail: when, which actor, what happened, to which task."""
    from supervisor.store.history import entries

    if verify:
        from supervisor.cli.governance import verify_log

        verify_log(open_store(ctx), as_json)
        return

    found = entries(open_store(ctx), limit, task_id)
    if as_json:
        emit_json([e.to_dict() for e in found])
        return
    if not found:
        click.echo("no history yet")
        return
    rows = [
        [e.time[:19].replace("T", " "), e.actor, e.event, _tasks(e.tasks), e.summary] for e in found
    ]
    click.echo(table(rows, ["WHEN (UTC)", "ACTOR", "EVENT", "TASK", "WHAT"]))


def _tasks(ids: list[str]) -> str:
    return ", ".join(ids[:2]) + (f" +{len(ids) - 2}" if len(ids) > 2 else "")
