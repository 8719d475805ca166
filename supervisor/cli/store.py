"""`fleet init`, `fleet config` and `fleet log`: the home, its settings and its audit trail."""

from __future__ import annotations

import click

from supervisor.cli.ids import LINKED_ID
from supervisor.cli.main import emit_json, open_store, table


@click.command()
@click.option("--pipeline", default="", help="Install a preset of roles and rules: review.")
@click.option("--json", "as_json", is_flag=True, help="The home (and what was installed) as JSON.")
@click.pass_context
def init(ctx: click.Context, pipeline: str, as_json: bool) -> None:
    """Create the fleet home (every command also does this on first use)."""
    store = open_store(ctx)
    lines: list[str] = []
    if pipeline:  # roles, [[on]] rules and gates (supervisor.queue.pipelines)
        from supervisor.queue.pipelines import install

        lines = list(install(store, pipeline))
    if as_json:
        emit_json({"home": str(store.home), **({"installed": lines} if pipeline else {})})
        return
    click.echo(f"fleet home: {store.home}")
    for line in lines:
        click.echo(line)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="The configuration as JSON.")
@click.pass_context
def config(ctx: click.Context, as_json: bool) -> None:
    """Show or change the configuration (config.toml in the store; every change is a commit)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(config_show, as_json=as_json)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="The configuration as JSON.")
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
@click.option("--json", "as_json", is_flag=True, help="The key and its value as JSON.")
@click.pass_context
def config_get(ctx: click.Context, key: str, as_json: bool) -> None:
    """One value, e.g. `fleet config get max_concurrent`."""
    import json

    from supervisor import config as cfg
    from supervisor.cli.configkeys import nearest_key
    from supervisor.queue import configure

    value = nearest_key(key, lambda: cfg.get(configure.current(open_store(ctx)), key))
    if as_json:
        emit_json({"key": key, "value": value})
        return
    click.echo(value if isinstance(value, str) else json.dumps(value))


@config.command("set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--json", "as_json", is_flag=True, help="The new configuration as JSON.")
@click.pass_context
def config_set(ctx: click.Context, pairs: tuple[str, ...], as_json: bool) -> None:
    """Change settings in one commit, e.g. `fleet config set max_concurrent=4`."""
    from supervisor.cli.configkeys import nearest_key
    from supervisor.queue import configure

    cfg = nearest_key(
        pairs[0].partition("=")[0], lambda: configure.set_values(open_store(ctx), list(pairs))
    )
    if as_json:
        emit_json(cfg.model_dump())
        return
    click.echo("config updated: " + ", ".join(pairs))


@config.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The file loaded, as JSON.")
@click.pass_context
def config_load(ctx: click.Context, path: str, as_json: bool) -> None:
    """Replace config.toml with FILE (how [[on]] rules are written), if it is valid."""
    from pathlib import Path

    from supervisor.queue.pipelines import load_config

    load_config(open_store(ctx), Path(path).read_text())
    if as_json:
        emit_json({"loaded": path})
        return
    click.echo(f"config loaded from {path}")


@config.command("edit")
@click.option("--json", "as_json", is_flag=True, help="Whether it changed, as JSON.")
@click.pass_context
def config_edit(ctx: click.Context, as_json: bool) -> None:
    """Edit config.toml in $VISUAL or $EDITOR; saved in one commit only if it is valid."""
    import os
    import shlex
    import subprocess
    import sys
    import tempfile

    from supervisor.errors import BadInput, FleetError
    from supervisor.queue import configure

    store = open_store(ctx)
    before = configure.raw_text(store)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, name = tempfile.mkstemp(prefix="config-", suffix=".toml", dir=store.home / "tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(before)
    while True:  # as `visudo` does: an invalid file is refused, and on a terminal edited again
        try:
            code = subprocess.run([*shlex.split(editor), name], check=False).returncode
        except OSError as exc:
            raise FleetError(
                f"cannot run the editor {editor!r}: {exc.strerror}", hint="set VISUAL or EDITOR"
            ) from None
        if code != 0:
            raise FleetError(f"the editor exited with {code}; nothing was saved", hint=name)
        with open(name, "rb") as fh:
            after = fh.read()
        try:
            changed = configure.replace_text(store, before, after)
            break
        except BadInput as exc:
            if not (sys.stdin.isatty() and click.confirm(f"fleet: {exc.message}\nedit again?")):
                raise BadInput(
                    exc.message, hint=f"nothing was saved; your edit is in {name}"
                ) from None
    os.unlink(name)
    if as_json:
        emit_json({"changed": changed})
        return
    click.echo("config updated" if changed else "config unchanged")


@click.command()
@click.option(
    "-n",
    "--limit",
    "limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="At most this many entries (0: all).",
)
@click.option(
    "--task", "task_id", default="", type=LINKED_ID, help="Only what happened to this task."
)
@click.option("--json", "as_json", is_flag=True, help="The entries as JSON.")
@click.option("--verify", is_flag=True, help="Prove the history is the one fleet wrote.")
@click.pass_context
def log(ctx: click.Context, limit: int, task_id: str, as_json: bool, verify: bool) -> None:
    """The audit trail: when, which actor, what happened (and why an attempt failed), to which
    task. `--verify` proves the history is the one fleet wrote."""
    from supervisor.cli.trail import explain
    from supervisor.store.history import entries

    store = open_store(ctx)
    if verify:
        from supervisor.cli.governance import verify_log

        verify_log(store, as_json)
        return
    found = entries(store, limit, task_id)
    told = explain(store, found)
    if as_json:
        emit_json([{**e.to_dict(), "reasons": r} for e, (_, r) in zip(found, told, strict=True)])
        return
    if not found:
        click.echo("no history yet")
        return
    rows = [
        [e.time[:19].replace("T", " "), e.actor, e.event, _tasks(e.tasks), text]
        for e, (text, _) in zip(found, told, strict=True)
    ]
    click.echo(table(rows, ["WHEN (UTC)", "ACTOR", "EVENT", "TASK", "WHAT"]))


def _tasks(ids: list[str]) -> str:
    return ", ".join(ids[:2]) + (f" +{len(ids) - 2}" if len(ids) > 2 else "")
