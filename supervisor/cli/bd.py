"""`fleet bd ...`: the task queue, with beads' commands and flags."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from supervisor.cli.create import OPTIONS, Option
from supervisor.cli.create import create as create_task
from supervisor.cli.ids import LINKED_ID, TASK_ID
from supervisor.cli.main import color, emit_json, open_store, table
from supervisor.cli.output import clean
from supervisor.errors import BadInput

PRIORITY = click.IntRange(0, 4)
F = TypeVar("F", bound=Callable[..., Any])
STATUS_COLORS = {
    "open": "green",
    "in_progress": "yellow",
    "blocked": "red",
    "closed": "bright_black",
}


@click.group()
def bd() -> None:
    """The task queue (beads-compatible): create, list, link and close tasks."""


def _click_option(option: Option) -> Callable[[F], F]:
    """The click option `option` declares (see `cli_create`, which parses without click)."""
    kinds: dict[str, dict[str, Any]] = {
        "flag": {"is_flag": True},
        "many": {"multiple": True},
        "int": {"type": click.IntRange(option.low, option.high)},
        "float": {"type": float},
    }
    shown = option.kind != "flag" and bool(option.default)
    return click.option(
        *option.flags,
        option.dest,
        default=option.default,
        show_default=shown,
        help=option.help,
        **kinds.get(option.kind, {}),
    )


def _create_options(command: F) -> F:
    for option in reversed(OPTIONS):
        command = _click_option(option)(command)
    return command


@bd.command()
@click.argument("title_arg", metavar="[TITLE]", required=False)
@_create_options
@click.pass_context
def create(ctx: click.Context, /, **params: Any) -> None:
    """Create a task and print its id.

    \b
    fleet bd create "Fix the login bug" -p 1 --coder claude
    fleet bd create "Run the tests" --coder shell --command "make test" --deps fl-3k9x
    """
    click.echo(create_task(ctx.find_root().obj, params))


@bd.command("list")
@click.option("--status", "statuses", multiple=True, help="Only this status (repeatable).")
@click.option("--label", default="", help="Only tasks with this label.")
@click.option("--coder", default="", help="Only tasks for this coder.")
@click.option("--all", "show_all", is_flag=True, help="Include closed tasks.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="The tasks as JSON.")
@click.pass_context
def list_tasks(
    ctx: click.Context,
    statuses: tuple[str, ...],
    label: str,
    coder: str,
    show_all: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List tasks by priority, then age (closed ones only with --all or --status closed)."""
    from supervisor.model import STATUSES

    for status in statuses:
        if status not in STATUSES:
            raise BadInput(
                f"status {status!r} is not valid", hint=f"use one of {', '.join(STATUSES)}"
            )
    wanted: list[str] | None = list(statuses) or (
        None if show_all else [s for s in STATUSES if s != "closed"]
    )
    store = open_store(ctx)
    store.cache.sync()
    rows = store.cache.select(wanted, label=label, coder=coder, limit=limit)
    if as_json:
        emit_json(rows)
        return
    _print_tasks(rows, store)


def _print_tasks(rows: list[dict[str, Any]], store: Any = None) -> None:
    from supervisor.cli.fit import fit_last, terminal_width

    if not rows:
        click.echo("no tasks")
        return
    body = [
        [
            r["id"],
            f"P{r['priority']}",
            color(
                "needs refinement" if r.get("needs_refinement") else r["status"],
                STATUS_COLORS.get(r["status"], "white"),
            ),
            r.get("issue_type", ""),
            _coder(store, r),
            r["title"],
        ]
        for r in rows
    ]
    headers = ["ID", "P", "STATUS", "TYPE", "CODER", "TITLE"]
    click.echo(table(fit_last(body, headers, terminal_width()), headers))


def _coder(store: Any, row: dict[str, Any]) -> str:
    """The coder the task runs with: its own, else its role's or the configuration's."""
    if row.get("coder") or store is None:
        return str(row.get("coder", ""))
    from supervisor.cli.checks import effective_coder
    from supervisor.model import Task

    return effective_coder(store, Task.from_dict(row))


@bd.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Show one task with its dependencies and dependents."""
    store = open_store(ctx)
    task = store.get(task_id)
    deps = [
        {"id": d.depends_on_id, "type": d.type, **_brief(store, d.depends_on_id)}
        for d in task.dependencies
    ]
    dependents = [
        {"id": i, "type": t, **_brief(store, i)} for i, t in store.cache.dependents(task.id)
    ]
    from supervisor.cli import work

    if as_json:
        where = work.where(store, task)
        emit_json({**task.to_dict(), "dependencies": deps, "dependents": dependents, **where})
        return
    lines = [
        f"{task.id}  {clean(task.title)}",
        f"status: {task.status}   priority: P{task.priority}   type: {task.issue_type}",
    ]
    if task.status_reason:
        lines.append(f"why: {task.status_reason}")
    for name in (
        "assignee",
        "coder",
        "model",
        "role",
        "account",
        "command",
        "cwd",
        "not_before",
        "close_reason",
    ):
        if getattr(task, name):
            lines.append(f"{name}: {getattr(task, name)}")
        elif name == "coder":
            from supervisor.cli.checks import effective_coder

            lines.append(f"coder: {effective_coder(store, task)} (the default)")
    lines += work.lines(store, task)
    if task.labels:
        lines.append("labels: " + ", ".join(task.labels))
    if task.route:
        route = task.route
        lines.append(f"routed: to {route.get('role')} by {route.get('by')}: {route.get('reason')}")
    if task.subtasks:
        waits = " (waits for them)" if task.waiting_on_subtasks else ""
        lines.append(f"subtasks: {', '.join(task.subtasks)}{waits}")
    lines.append(f"created: {task.created_at}   updated: {task.updated_at}")
    for name in ("description", "design", "acceptance_criteria", "notes"):
        if getattr(task, name):
            lines += ["", f"{name.replace('_', ' ')}:", getattr(task, name)]
    for title, items in (("depends on", deps), ("dependents", dependents)):
        if items:
            lines += ["", f"{title}:"] + [
                f"  {d['id']} ({d['type']}) [{d.get('status', '?')}] {d.get('title', '')}"
                for d in items
            ]
    if task.attempts:
        lines += ["", "attempts:"] + [
            f"  #{a.get('n')} {a.get('outcome', '?')} {a.get('reason', '')}".rstrip()
            for a in task.attempts
        ]
    click.echo(clean("\n".join(lines), one_line=False))


def _brief(store: Any, task_id: str) -> dict[str, Any]:
    other = store.cache.get(task_id)
    return {} if other is None else {"status": other.status, "title": other.title}


@bd.command()
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def ready(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Tasks ready to run: open, unblocked, not deferred; by priority, then oldest first."""
    store = open_store(ctx)
    store.cache.sync()
    rows = store.cache.bodies(store.cache.ready(time.time(), limit))
    _mark_refinement(store, rows)
    if as_json:
        emit_json(rows)
    else:
        _print_tasks(rows, store)


def _mark_refinement(store: Any, rows: list[dict[str, Any]]) -> None:
    """A ready task its role is not ready for says so: `needs_refinement` (what it lacks)."""
    from supervisor.queue.rolecheck import mention

    if not rows or not mention(store, "ready_when"):  # no role asks: skip loading the config
        return
    from supervisor import routing
    from supervisor.model import Task
    from supervisor.queue.roles import effective_config

    cfg = effective_config(store)
    for row in rows:
        decision = routing.decide(Task.from_dict(row), cfg)
        if decision.missing:
            row["needs_refinement"] = decision.missing


@bd.command()
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def blocked(ctx: click.Context, as_json: bool) -> None:
    """Tasks that are blocked, each with what blocks it."""
    from supervisor.graph import blocked_by

    store = open_store(ctx)
    store.cache.sync()
    nodes = store.cache.nodes()
    by = blocked_by(nodes)
    explicit = [n.id for n in nodes.values() if n.status == "blocked" and n.id not in by]
    ids = sorted([*by, *explicit], key=lambda i: (nodes[i].priority, nodes[i].created_ts, i))
    rows = []
    for body in store.cache.bodies(ids):
        body["blocked_by"] = by.get(body["id"], [])
        body["blocked_by_count"] = len(body["blocked_by"])
        rows.append(body)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no blocked tasks")
        return
    body_rows = [
        [
            r["id"],
            f"P{r['priority']}",
            r["status"],
            ", ".join(r["blocked_by"]) or r.get("status_reason", ""),
            r["title"],
        ]
        for r in rows
    ]
    click.echo(table(body_rows, ["ID", "P", "STATUS", "BLOCKED BY", "TITLE"]))


@bd.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--title")
@click.option("-d", "--description")
@click.option("--design")
@click.option("--acceptance", "acceptance_criteria")
@click.option("--notes")
@click.option("-p", "--priority", type=PRIORITY)
@click.option(
    "-s",
    "--status",
    help="open, blocked, deferred or closed (only a supervisor sets in_progress).",
)
@click.option("--reason", help="Why it is blocked (with --status blocked; default: by whom).")
@click.option("-a", "--assignee")
@click.option("--coder")
@click.option("--model")
@click.option("--role")
@click.option("--account")
@click.option("--command")
@click.option("--cwd")
@click.option("--isolation", help="worktree or none (in --cwd itself).")
@click.option("--max-seconds", type=float)
@click.option("--max-tokens", type=click.IntRange(min=1))
@click.option("--max-cost", type=float)
@click.option("--max-attempts", type=click.IntRange(1, 100))
@click.option(
    "--after-children",
    type=click.Choice(["close", "integrate"]),
    help="Once its subtasks close: close it, or run it once more to integrate.",
)
@click.option("--deliver", help="Where its work goes: merge, branch or none.")
@click.option("--check", help="The command its merge must pass.")
@click.option("--add-label", multiple=True)
@click.option("--remove-label", multiple=True)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def update(
    ctx: click.Context,
    /,
    task_id: str,
    add_label: tuple[str, ...],
    remove_label: tuple[str, ...],
    as_json: bool,
    **fields: Any,
) -> None:
    """Change fields of a task.

    \b
    fleet bd update fl-3k9x -p 0 --add-label urgent
    """
    from supervisor.cli.checks import known_coder
    from supervisor.queue.mutations import update as update_task

    known_coder(fields.get("coder") or "")
    reason = fields.pop("reason")
    task = update_task(open_store(ctx), task_id, fields, add_label, remove_label, reason=reason)
    emit_json(task.to_dict()) if as_json else click.echo(f"updated {task.id}")


@bd.command()
@click.argument("task_ids", nargs=-1, required=True, type=TASK_ID)
@click.option("-r", "--reason", default="", help="Why it is closed.")
@click.option("--json", "as_json", is_flag=True, help="The closed tasks as JSON.")
@click.pass_context
def close(ctx: click.Context, task_ids: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Close tasks."""
    from supervisor.queue.mutations import close as close_tasks

    closed = close_tasks(open_store(ctx), list(task_ids), reason)
    if as_json:
        emit_json([task.to_dict() for task in closed])
        return
    for task in closed:
        click.echo(f"closed {task.id}")


@bd.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--json", "as_json", is_flag=True, help="The task as JSON.")
@click.pass_context
def reopen(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Reopen a closed (or blocked) task."""
    from supervisor.queue.mutations import reopen as reopen_task

    task = reopen_task(open_store(ctx), task_id)
    emit_json(task.to_dict()) if as_json else click.echo(f"reopened {task.id}")


@bd.group()
def dep() -> None:
    """Dependencies between tasks."""


@dep.command("add")
@click.argument("task_id", type=TASK_ID)
@click.argument("depends_on", type=TASK_ID)
@click.option(
    "-t",
    "--type",
    "kind",
    default="blocks",
    show_default=True,
    help="blocks, parent-child, related, discovered-from, ...",
)
@click.option("--json", "as_json", is_flag=True, help="The task as JSON.")
@click.pass_context
def dep_add(ctx: click.Context, task_id: str, depends_on: str, kind: str, as_json: bool) -> None:
    """TASK_ID depends on DEPENDS_ON (with `blocks`: it waits until DEPENDS_ON is closed)."""
    from supervisor.queue.mutations import add_dep

    task = add_dep(open_store(ctx), task_id, depends_on, kind)
    if as_json:
        emit_json(task.to_dict())
        return
    click.echo(f"{task_id} depends on {depends_on} ({kind})")


@dep.command("remove")
@click.argument("task_id", type=TASK_ID)
@click.argument("depends_on", type=LINKED_ID)
@click.option("--json", "as_json", is_flag=True, help="The task as JSON.")
@click.pass_context
def dep_remove(ctx: click.Context, task_id: str, depends_on: str, as_json: bool) -> None:
    """Remove the dependency of TASK_ID on DEPENDS_ON."""
    from supervisor.queue.mutations import remove_dep

    task = remove_dep(open_store(ctx), task_id, depends_on)
    if as_json:
        emit_json(task.to_dict())
        return
    click.echo(f"{task_id} no longer depends on {depends_on}")


@dep.command("tree")
@click.argument("task_id", type=TASK_ID)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def dep_tree(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """What TASK_ID depends on, all the way down."""
    store = open_store(ctx)
    root = store.get(task_id)

    def walk(tid: str, kind: str, seen: frozenset[str]) -> dict[str, Any]:
        task = store.cache.get(tid)
        node: dict[str, Any] = {
            "id": tid,
            "type": kind,
            "status": task.status if task else "missing",
            "title": task.title if task else "",
        }
        if task and tid not in seen:
            node["dependencies"] = [
                walk(d.depends_on_id, d.type, seen | {tid}) for d in task.dependencies
            ]
        return node

    tree = walk(root.id, "", frozenset())
    if as_json:
        emit_json(tree)
        return

    def render(node: dict[str, Any], depth: int) -> None:
        kind = f"({node['type']}) " if node["type"] else ""
        click.echo(clean(f"{'  ' * depth}{kind}{node['id']} [{node['status']}] {node['title']}"))
        for child in node.get("dependencies", []):
            render(child, depth + 1)

    render(tree, 0)


@bd.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option(
    "--trust", is_flag=True, help="Let shell commands in the file run (else they arrive deferred)."
)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def import_cmd(ctx: click.Context, path: Path, dry_run: bool, trust: bool, as_json: bool) -> None:
    """Import a beads JSONL export (upsert by id; ids are kept)."""
    from supervisor.queue.transfer import import_file

    report = import_file(open_store(ctx), path, dry_run=dry_run, trust=trust)
    if as_json:
        emit_json(report)
        return
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {report['created']} new, {report['updated']} updated,"
        f" {report['unchanged']} unchanged from {path}"
    )
    for line, why in report["skipped"]:
        click.echo(f"  skipped line {line}: {why}")
    for item in report["commands"]:
        state = "deferred until you open it" if item["held"] else "runnable"
        click.echo(clean(f"  line {item['line']}: {item['id']} runs ({state}): {item['command']}"))


@bd.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (default: stdout).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="With -o: what was written, as JSON (JSONL is JSON)."
)
@click.pass_context
def export_cmd(ctx: click.Context, output: Path | None, as_json: bool) -> None:
    """Export every task as beads JSONL."""
    from supervisor.queue.transfer import export_lines

    lines = export_lines(open_store(ctx))
    if output is None:
        import sys

        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    tmp = output.with_name(output.name + ".tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line)
                count += 1
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(
            f"cannot write {output}: {exc.strerror}",
            hint="pass -o a file in a directory that exists and that you can write",
        ) from None
    if as_json:
        emit_json({"path": str(output), "tasks": count})
        return
    click.echo(f"exported {count} tasks to {output}", err=True)
