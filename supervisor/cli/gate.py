"""`fleet task ID gate`: a task's approval gate: what it requires, who reviewed it with what
verdict, who approved or rejected it, and what it still waits for."""

from __future__ import annotations

import json
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store
from supervisor.store.paths import run_file


def gate_report(store: Any, task_id: str) -> dict[str, Any]:
    from supervisor import gates
    from supervisor.queue import roles as roles_store

    task = store.get(task_id)
    config = roles_store.effective_config(store)
    verdict = gates.may_deliver(task, gates.approvals(task), config)
    reviews = []
    for other_id, _ in store.cache.dependents(task.id):
        other = store.cache.get(other_id)
        origin = other.extra.get("origin") if other else None
        if other is None or not isinstance(origin, dict) or origin.get("task") != task.id:
            continue
        last = other.attempts[-1] if other.attempts else {}
        n = int(last.get("n") or 0)
        result = store.read(run_file(other.id, n, "result.json")) if last else None
        try:
            body = json.loads(result) if result else {}
        except ValueError:
            body = {}
        reviews.append(
            {
                "task": other.id,
                "role": other.role,
                "status": other.status,
                "why": other.status_reason,
                "identity": "/".join(
                    str(last.get(k) or "-") for k in ("coder", "model", "account")
                ),
                "verdict": body.get("verdict", "") if isinstance(body, dict) else "",
                "comments": body.get("comments", []) if isinstance(body, dict) else [],
            }
        )
    author = gates.author(task)
    return {
        "task": task.id,
        "status": task.status,
        "requires": gates.requirements(task, config),
        "may_deliver": verdict.ok,
        "waiting_for": verdict.waiting_for,
        "reason": verdict.reason,
        "waiting_since": task.closed_at if verdict.waiting_for and task.status == "closed" else "",
        "author": "/".join(x or "-" for x in author) if author else "",
        "reopens": task.extra.get("reopens", 0),
        "reviews": reviews,
        "approvals": gates.approvals(task),
    }


@click.command("gate")
@click.option("--json", "as_json", is_flag=True, help="The gate as JSON.")
@click.pass_context
def task_gate(ctx: click.Context, as_json: bool) -> None:
    """Its approval gate: requirements, reviews and verdicts, approvals, what it waits for."""
    report = gate_report(open_store(ctx), str(ctx.obj))
    if as_json:
        emit_json(report)
        return
    click.echo(f"task {report['task']} ({report['status']})")
    print_gate(report)


def print_gate(report: dict[str, Any]) -> None:
    if not (report["requires"] or report["reviews"] or report["approvals"]):
        click.echo("gate: none (its work needs no approval)")
        return
    click.echo(f"requires: {', '.join(report['requires']) or 'nothing'}")
    state = "open: may be delivered" if report["may_deliver"] else report["reason"]
    since = f" (since {report['waiting_since']})" if report["waiting_since"] else ""
    click.echo(f"gate: {state}{since}")
    if report["author"]:
        click.echo(f"author: {report['author']}")
    for review in report["reviews"]:
        click.echo(
            f"review {review['task']} by {review['identity']} ({review['role']}): "
            f"{review['verdict'] or review['status']}"
            + (f" - {review['why']}" if review["why"] else "")
        )
        for comment in review["comments"]:
            click.echo(f"  - {comment}")
    for a in report["approvals"]:
        who = a.get("by", "?")
        extra = a.get("comment") or a.get("reason") or ""
        click.echo(
            f"{a.get('verdict', '?')} by {who} as {a.get('kind')}"
            + (f":{a['role']}" if a.get("role") else "")
            + f" at {a.get('at', '?')} (work {a.get('work')})"
            + (f": {extra}" if extra else "")
        )


def waiting_rows(store: Any, now: float, shown: set[str]) -> list[dict[str, Any]]:
    """Rows for `fleet tasks`: closed tasks whose gate waits, with whom for and how long. (The
    configuration, and pydantic with it, is loaded only when a gate waits.)"""
    head = store.cache.sync()
    trees = store.git.trees
    state = trees.entries(trees.commit_tree(head)).get("state") if head else None
    if state is None or "reactions.json" not in trees.entries(state[1]):
        return []  # no gate ever waited: no git process for `fleet tasks`
    data = store.read("state/reactions.json")
    try:
        waiting = (json.loads(data) if data else {}).get("waiting") or {}
    except (ValueError, AttributeError):
        return []
    if not waiting:
        return []
    from supervisor import gates
    from supervisor.cli import views
    from supervisor.queue import roles as roles_store

    config = roles_store.effective_config(store)
    rows = []
    for task_id in sorted(waiting):
        task = store.cache.get(task_id)
        if task is None or task_id in shown or task.status != "closed":
            continue
        verdict = gates.may_deliver(task, gates.approvals(task), config)
        if not verdict.waiting_for:
            continue
        row = views.row(store, task, now)
        since = gates.waiting_since(task)
        waited = f" for {_ago(now - since)}" if since else ""
        row["status"] = "gate"
        row["why"] = f"waits for {', '.join(verdict.waiting_for)}{waited}"
        rows.append(row)
    return rows


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
