"""`fleet dashboard`: serve the fleet's web page until Ctrl-C (supervisor/web/)."""

from __future__ import annotations

import sys

import click

from supervisor.cli.main import open_store


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any but loopback requires the token printed in the URL.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8470,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print `{"url": ...}` (one line) instead, then serve.'
)
@click.pass_context
def dashboard(ctx: click.Context, host: str, port: int, as_json: bool) -> None:
    """A live web page of the fleet: tasks, graph, logs, usage, budgets, merge queue, gates."""
    import json

    from supervisor.web.server import Dashboard

    store = open_store(ctx)
    board = Dashboard(store.home, host, port)
    if as_json:
        click.echo(json.dumps({"url": board.url}), nl=True)
        sys.stdout.flush()
    else:
        click.echo(f"fleet dashboard: {board.url}  (Ctrl-C to stop)")
    try:
        board.serve()
    except KeyboardInterrupt:
        click.echo("dashboard stopped")
