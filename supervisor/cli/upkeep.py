"""`fleet store`: the store's format, size and upkeep (migrate, gc, status)."""

from __future__ import annotations

import click

from supervisor.cli.main import emit_json, open_store


@click.group()
def store() -> None:
    """The store itself: its format, its size, packing it."""


@store.command("status")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The store's format, task count and what it holds on disk."""
    from supervisor.store import maintenance
    from supervisor.store.paths import FORMAT

    home = open_store(ctx)
    home.snapshot()  # migrates a store of an earlier format
    info = {
        "home": str(home.home),
        "format": home.format(),
        "fleet_format": FORMAT,
        "tasks": home.cache.count(),
        **maintenance.usage(home),
        "packing_due": maintenance.due(home),
    }
    if as_json:
        emit_json(info)
        return
    click.echo(f"store {info['home']}: format {info['format']}, {info['tasks']} tasks")
    click.echo(
        f"  {info['loose_objects']} loose objects ({_mb(info['loose_bytes'])}),"
        f" {info['packs']} packs ({_mb(info['pack_bytes'])}),"
        f" {_mb(info['repository_bytes'])} in all"
    )
    if info["packing_due"]:
        click.echo("  packing is due: a running supervisor does it, or `fleet store gc`")


@store.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def migrate(ctx: click.Context, as_json: bool) -> None:
    """Bring a store written by an earlier fleet to this fleet's format (any command does it
    on first use; this does only that)."""
    from supervisor.store.migrate import migrate as run

    report = run(open_store(ctx))
    if as_json:
        emit_json(report)
    elif report["migrated"]:
        click.echo(
            f"migrated the store from format {report['from']} to {report['format']}:"
            f" {report['files']} files moved; the previous state is kept as {report['backup']}"
        )
    else:
        click.echo(f"the store is already at format {report['format']}: nothing to do")


@store.command("gc")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def gc(ctx: click.Context, as_json: bool) -> None:
    """Pack the whole store now and drop unreachable objects older than an hour."""
    from supervisor.store import maintenance

    report = maintenance.gc(open_store(ctx))
    if as_json:
        emit_json(report)
        return
    before, after = report["before"], report["after"]
    click.echo(
        f"packed in {report['seconds']:.1f} s: {_mb(before['repository_bytes'])}"
        f" ({before['loose_objects']} loose objects, {before['packs']} packs) ->"
        f" {_mb(after['repository_bytes'])}"
        f" ({after['loose_objects']} loose objects, {after['packs']} packs)"
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
