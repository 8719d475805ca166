"""`fleet route` (how a task's role is chosen) and `fleet plan` (a spec made a task graph)."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store
from supervisor.errors import BadInput, FleetError

PLAN_ROLE = "planner"


@click.command()
@click.argument("task_id")
@click.option("--explain", is_flag=True, help="Show which rule matches and why; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.pass_context
def route(ctx: click.Context, task_id: str, explain: bool, as_json: bool) -> None:
    """Route a task by the `[[route]]` rules now, or explain how it will be routed.

    \b
    fleet route fl-3k9x --explain
    fleet config set 'route=[{role = "docs-writer", labels = ["docs"]}]'
    """
    from supervisor import routing
    from supervisor.queue.planning import set_route
    from supervisor.queue.roles import effective_config

    store = open_store(ctx)
    task = store.get(task_id)
    cfg = effective_config(store)
    decision = routing.decide(task, cfg)
    lines = routing.explain(task, cfg)
    if not explain and decision.route is not None:
        task = set_route(store, task.id, decision.route)
        lines = [f"{task.id} -> {task.role} ({decision.route['by']}: {decision.route['reason']})"]
    out = {
        "id": task.id,
        "role": task.role,
        "route": task.route,
        "runs_as": decision.role,
        "purpose": decision.purpose,
        "needs_refinement": decision.missing,
        "explain": lines,
    }
    emit_json(out) if as_json else click.echo("\n".join(lines))


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Run the planner now and print the graph; queue nothing."
)
@click.option(
    "--subtasks",
    "subtasks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Queue this reviewed graph (the JSON `--dry-run --json` prints) instead of planning.",
)
@click.option("--role", default=PLAN_ROLE, show_default=True, help="The role that plans.")
@click.option("--cwd", default="", help="Where the work happens (default: the current directory).")
@click.option(
    "--command", default="", help="The planner's command, when the role's coder is shell."
)
@click.option(
    "--after-children",
    type=click.Choice(["close", "integrate"]),
    default="integrate",
    show_default=True,
    help="Once the subtasks close: close the plan, or run the planner once more to integrate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def plan(
    ctx: click.Context,
    spec: Path,
    dry_run: bool,
    subtasks_file: Path | None,
    role: str,
    cwd: str,
    command: str,
    after_children: str,
    as_json: bool,
) -> None:
    """Turn a spec (markdown) into a task graph: the planner role splits it into subtasks.

    \b
    fleet plan spec.md --dry-run          # run the planner now, print the graph, queue nothing
    fleet plan spec.md --dry-run --json > graph.json
    fleet plan spec.md --subtasks graph.json   # queue exactly the reviewed graph
    fleet plan spec.md                    # queue the planning task; the supervisor runs it
    """
    from supervisor.queue.mutations import NewTask, create
    from supervisor.queue.roles import effective_config

    store = open_store(ctx)
    cfg = effective_config(store)
    text = _read_spec(spec)
    new = NewTask(
        title=f"Plan: {_title(text, spec)}",
        description=text,
        acceptance_criteria="The spec is split into subtasks that together deliver it.",
        cwd=cwd,
        role=role,
        command=command,
        after_children=after_children,
        labels=["plan"],
    )
    if subtasks_file is not None:
        from supervisor.queue.planning import queue_graph

        raw = _read_graph(subtasks_file)
        parent, children = queue_graph(store, new, raw, cfg)
        _say_graph(parent.id, [c.to_dict() for c in children], as_json, queued=True)
        return
    if role not in cfg.roles:
        raise BadInput(
            f"no role {role!r} is configured to plan",
            hint=f"fleet roles add {role} --from planner (then `fleet roles set {role} coder=...`)",
        )
    if dry_run:
        _say_graph("", _dry_run(store, new, cfg.max_seconds), as_json, queued=False)
        return
    task = create(store, new)
    if as_json:
        emit_json(task.to_dict())
        return
    click.echo(task.id)
    click.echo(
        f"the {role} role splits it into {task.id}.1, {task.id}.2, ... when it runs;"
        f" follow it with `fleet task {task.id} log -f`",
        err=True,
    )


def _read_spec(spec: Path) -> str:
    try:
        text = spec.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{spec} is not UTF-8 text", hint="save the spec as UTF-8") from None
    if not text.strip():
        raise BadInput(f"{spec} is empty", hint="write what to build in it (markdown)")
    if len(text) > 256 * 1024:
        raise BadInput(f"{spec} is larger than 256 KB", hint="split it into several specs")
    return text


def _title(text: str, spec: Path) -> str:
    for line in text.splitlines():
        found = re.match(r"^#{1,3}\s+(.+?)\s*#*\s*$", line)
        if found:
            return found.group(1)[:200]
    return spec.stem


def _read_graph(path: Path) -> object:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"{path} is not JSON: {exc}", hint="use what `--dry-run --json` printed"
        ) from None
    return data.get("subtasks") if isinstance(data, dict) else data


def _dry_run(store: Any, new: Any, max_seconds: float) -> list[dict[str, Any]]:
    """Run the planning task in a scratch home with this home's configuration, in a scratch clone
    of the repository, until its first attempt ends; the graph it proposes."""
    from supervisor.queue.mutations import create, resolve_cwd
    from supervisor.run.process import OsProcesses
    from supervisor.run.supervisor import Supervisor
    from supervisor.store.store import Change, Store

    config_text = store.cache.config_text()
    with tempfile.TemporaryDirectory(prefix="fleet-plan-") as tmp:
        new.cwd = str(_scratch_cwd(Path(resolve_cwd(new.cwd)), Path(tmp) / "work"))
        scratch = Store.open(Path(tmp) / "home")
        try:
            files: dict[str, bytes | None] = {"config.toml": config_text.encode()}
            scratch.mutate(
                lambda snap: (Change("config: a dry run's", "config_changed", files=files), None)
            )
            task = create(scratch, new)
            sup = Supervisor(scratch, OsProcesses())
            try:
                _until_first_end(scratch, sup, task.id, time.time() + max_seconds + 60)
            finally:
                sup.stop_all()
                sup.wait_stops(sup.config.grace_seconds + 5)
            return _graph(scratch, task.id)
        finally:
            scratch.close()


def _scratch_cwd(cwd: Path, where: Path) -> Path:
    """A clone of the repository `cwd` is in, sharing its objects (nothing of it is written), at
    the same place inside it; outside a repository, `cwd` itself."""
    top = subprocess.run(
        ["git", "-C", str(cwd), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if top.returncode != 0:
        return cwd
    root = Path(top.stdout.strip())
    subprocess.run(
        ["git", "clone", "-q", "--shared", str(root), str(where)], check=True, capture_output=True
    )
    return where / cwd.relative_to(root)


def _until_first_end(store: Any, sup: Any, task_id: str, deadline: float) -> None:
    while time.time() < deadline:
        sup.tick(time.time())
        task = store.get(task_id)
        if task.status not in ("open", "in_progress") or (task.status == "open" and task.attempts):
            return
        time.sleep(0.1)
    raise FleetError("the planner ran past its time limit", hint="raise max_seconds")


def _graph(store: Any, task_id: str) -> list[dict[str, Any]]:
    task = store.get(task_id)
    if not task.subtasks:
        last = task.attempts[-1] if task.attempts else {}
        why = last.get("reason") or last.get("summary") or task.status_reason or "no reason given"
        raise FleetError(
            f"the planner proposed no subtasks: {why}",
            hint="read its log in the dry run's output, or refine the spec",
        )
    children = [store.get(c) for c in task.subtasks]
    index = {c.id: i for i, c in enumerate(children)}
    out = []
    for child in children:
        entry: dict[str, Any] = {"title": child.title}
        for key, value in (
            ("description", child.description),
            ("acceptance", child.acceptance_criteria),
            ("role", child.role),
            ("coder", child.coder),
            ("command", child.command),
        ):
            if value:
                entry[key] = value
        deps: list[int | str] = [
            index.get(d.depends_on_id, d.depends_on_id)
            for d in child.dependencies
            if d.type == "blocks"
        ]
        entry["deps"] = deps
        out.append(entry)
    return out


def _say_graph(parent: str, entries: list[dict[str, Any]], as_json: bool, queued: bool) -> None:
    if as_json:
        emit_json({"parent": parent, "subtasks": entries} if queued else {"subtasks": entries})
        return
    if queued:
        click.echo(f"{parent}: {len(entries)} subtasks queued; it waits for them")
    for i, entry in enumerate(entries):
        name = entry.get("id") or str(i)
        who = entry.get("role") or entry.get("coder") or "routed"
        deps = entry.get("deps") or [
            d["depends_on_id"] for d in entry.get("dependencies", []) if d.get("type") == "blocks"
        ]
        after = f"  after {', '.join(str(d) for d in deps)}" if deps else ""
        click.echo(f"  {name}  [{who}] {entry['title']}{after}")
