"""`fleet roles`: the roles of this fleet (`roles/NAME.md` in the store), their handbooks and
settings; add one from a template, change one. Every change is a commit."""

from __future__ import annotations

import click

from supervisor.cli.main import emit_json, open_store, table


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="The roles as JSON.")
@click.pass_context
def roles(ctx: click.Context, as_json: bool) -> None:
    """List the roles (store files and [roles.NAME] config tables) and their settings."""
    if ctx.invoked_subcommand is not None:
        return
    from supervisor.queue import roles as roles_store

    found = roles_store.all_roles(open_store(ctx))
    if as_json:
        emit_json([r.to_dict() for _, r in sorted(found.items())])
        return
    if not found:
        click.echo("no roles yet: add one with `fleet roles add developer`")
        return
    rows = []
    for name, role in sorted(found.items()):
        s = role.settings
        rows.append(
            [
                name,
                "/".join(x for x in (s.coder, s.model) if x) or "(default)",
                s.account or ",".join(s.accounts),
                s.max_concurrent or "",
                s.deliver,
                ",".join(s.requires),
                role.source,
                _first_line(role.handbook),
            ]
        )
    click.echo(
        table(rows, ["ROLE", "CODER", "ACCOUNT", "MAX", "DELIVER", "REQUIRES", "FROM", "HANDBOOK"])
    )


@roles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The role as JSON.")
@click.pass_context
def roles_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """One role: its settings and its whole handbook."""
    from supervisor import roles as roles_mod
    from supervisor.queue import roles as roles_store

    role = roles_store.get(open_store(ctx), name)
    if as_json:
        emit_json(role.to_dict())
        return
    settings = role.settings.model_dump(exclude={"handbook"}, exclude_defaults=True)
    click.echo(f"role {name} ({role.source})")
    if role.source != "config":
        click.echo(f"file: {roles_mod.role_path(name)} in the store")
    for key, value in settings.items():
        click.echo(f"  {key} = {value}")
    click.echo("")
    click.echo(role.handbook)


@roles.command("add")
@click.argument("name")
@click.option("--from", "source", default="", help="A template: developer, reviewer, ...")
@click.option("--json", "as_json", is_flag=True, help="The role added, as JSON.")
@click.pass_context
def roles_add(ctx: click.Context, name: str, source: str, as_json: bool) -> None:
    """Add a role, from a shipped template (by default the one of its name, if any)."""
    from supervisor.queue import roles as roles_store

    role = roles_store.add(open_store(ctx), name, source)
    if as_json:
        emit_json(role.to_dict())
        return
    click.echo(f"role {name} added" + (f" from {source}" if source else ""))


@roles.command("set")
@click.argument("name")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--json", "as_json", is_flag=True, help="The role changed, as JSON.")
@click.pass_context
def roles_set(ctx: click.Context, name: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Change a role's settings in one commit, e.g. `fleet roles set reviewer model=opus`."""
    from supervisor.queue import roles as roles_store

    role = roles_store.set_values(open_store(ctx), name, list(pairs))
    if as_json:
        emit_json(role.to_dict())
        return
    click.echo(f"role {name} updated: " + ", ".join(pairs))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:40]
    return ""
