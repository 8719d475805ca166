"""`fleet worktrees`: the tasks' worktrees, and `fleet worktrees prune`."""

from __future__ import annotations

import click

from supervisor.cli.main import emit_json, open_store, table


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def worktrees(ctx: click.Context, as_json: bool) -> None:
    """Each task's worktree: task, status, branch, ahead/behind its base, dirty, size, merged."""
    if ctx.invoked_subcommand is not None:
        return
    from supervisor.run.worktrees import listing

    found = listing(open_store(ctx))
    if as_json:
        emit_json([p.to_dict() for p in found])
        return
    if not found:
        click.echo("no worktrees")
        return
    rows = [
        [
            p.task,
            p.status,
            p.branch,
            p.base or "?",
            "?" if p.ahead is None else f"+{p.ahead} -{p.behind}",
            "dirty" if p.dirty else "clean",
            _size(p.size),
            "yes" if p.merged else "no",
            p.path,
        ]
        for p in found
    ]
    headers = ["TASK", "STATUS", "BRANCH", "BASE", "AHEAD/BEHIND", "TREE", "SIZE", "MERGED", "PATH"]
    click.echo(table(rows, headers))


@worktrees.command("prune")
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def prune_cmd(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Remove the worktrees whose work is merged or that hold no change (never unmerged work)."""
    from supervisor.run.worktrees import prune

    removed, kept = prune(open_store(ctx), dry_run)
    if as_json:
        emit_json(
            {
                "removed": [p.to_dict() for p in removed],
                "kept": [{**p.to_dict(), "why": why} for p, why in kept],
                "dry_run": dry_run,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    for p in removed:
        click.echo(f"{verb} {p.path} ({p.branch}, merged into {p.base})")
    for p, why in kept:
        click.echo(f"kept {p.path}: {why}")
    if not removed and not kept:
        click.echo("no worktrees")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
