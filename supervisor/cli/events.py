"""`fleet events`, `fleet emit`, `fleet approve`, `fleet reject`: the event feed, and what people
and agents say about a task's work."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing events as they happen.")
@click.option("--since", default="", help="Only events since TIME (RFC 3339, or 30s, 10m, 2h, 1d).")
@click.option("--type", "types", multiple=True, help="Only this type (repeatable; review.* works).")
@click.option("--task", "task_id", default="", help="Only events about this task.")
@click.option("--after", default="", help="Only events after this event id.")
@click.option(
    "--cursor",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Resume after the id kept in FILE, and keep the last printed id there.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.pass_context
def events(
    ctx: click.Context,
    follow: bool,
    since: str,
    types: tuple[str, ...],
    task_id: str,
    after: str,
    cursor: Path | None,
    as_json: bool,
) -> None:
    """What happened, as typed events: task.created, task.closed, review.verdict, gate.open, ..."""
    import fnmatch

    from supervisor.model import check_id
    from supervisor.store import feed

    if task_id:
        check_id(task_id)
    start = _since(since) if since else 0.0
    if cursor is not None and not after and cursor.exists():
        after = cursor.read_text().strip()
    store = open_store(ctx)
    stopping: list[int] = []
    if follow:  # a stop between two events: the printed line and the cursor always agree
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, _frame: stopping.append(number))
    stream = (
        feed.follow(store, after, start, stop=lambda: bool(stopping))
        if follow
        else iter(feed.read(store, after, start))
    )
    for event in stream:
        wanted = not (task_id and event.task != task_id) and (
            not types or any(fnmatch.fnmatchcase(event.type, t) for t in types)
        )
        if wanted:
            click.echo(_line(event.to_dict(), as_json))
        _keep(cursor, event.id)
        if stopping:
            return


def _line(data: dict[str, Any], as_json: bool) -> str:
    import json

    if as_json:
        return json.dumps(data, ensure_ascii=False)
    details = " ".join(f"{k}={_short(v)}" for k, v in data["data"].items() if v not in ("", None))
    when = data["time"][:19].replace("T", " ")
    return f"{when}  {data['type']:<16} {data['task'] or '-':<12} {details}".rstrip()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:59] + "…"


def _keep(cursor: Path | None, event_id: str) -> None:
    if cursor is None:
        return
    tmp = cursor.with_name(cursor.name + ".tmp")
    tmp.write_text(event_id + "\n")
    tmp.replace(cursor)


def _since(text: str) -> float:
    from supervisor.errors import BadInput
    from supervisor.model import parse_time

    match = re.match(r"^(\d+(?:\.\d+)?)([smhd])\Z", text.strip())
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return time.time() - float(match.group(1)) * unit
    try:
        return parse_time(text)
    except ValueError:
        raise BadInput(
            f"--since {text!r} is not a time", hint="use RFC 3339 (2026-01-31T12:00:00Z) or 10m, 2h"
        ) from None


@click.command()
@click.argument("type")
@click.option("--task", "task_id", default="", help="The task the event is about.")
@click.option("--data", default="", help="A JSON object with the event's details.")
@click.option("--json", "as_json", is_flag=True, help="What was recorded, as JSON.")
@click.pass_context
def emit(ctx: click.Context, type: str, task_id: str, data: str, as_json: bool) -> None:
    """Record an event (for agents and scripts), e.g. `fleet emit deploy.done --task fl-3k9x`."""
    from supervisor.queue.approvals import emit as emit_event

    emit_event(open_store(ctx), type, task_id, data)
    if as_json:
        emit_json({"type": type, "task": task_id, "data": json.loads(data) if data else {}})
        return
    click.echo(f"emitted {type}" + (f" for {task_id}" if task_id else ""))


@click.command()
@click.argument("task_id")
@click.option("--comment", default="", help="Why, for the record.")
@click.option("--json", "as_json", is_flag=True, help="The gate after the approval, as JSON.")
@click.pass_context
def approve(ctx: click.Context, task_id: str, comment: str, as_json: bool) -> None:
    """Approve a task's finished work (its gate opens once every requirement is met)."""
    from supervisor.queue.approvals import approve as approve_task

    agent = os.environ.get("FLEET_TASK_ID", "")  # run from inside an agent: that agent approves
    verdict = approve_task(open_store(ctx), task_id, comment, agent)
    if as_json:
        emit_json({"task": task_id, "may_deliver": verdict.ok, "waiting_for": verdict.waiting_for})
        return
    if verdict.ok:
        click.echo(f"approved {task_id}: its gate is open, it may be delivered")
    else:
        click.echo(f"approved {task_id}: still waits for {', '.join(verdict.waiting_for)}")


@click.command()
@click.argument("task_id")
@click.option("--reason", required=True, help="What must change (the task's next handoff).")
@click.option("--json", "as_json", is_flag=True, help="The reopened task, as JSON.")
@click.pass_context
def reject(ctx: click.Context, task_id: str, reason: str, as_json: bool) -> None:
    """Reject a task's finished work: it reopens on the same branch with the reason."""
    from supervisor.queue.approvals import reject as reject_task

    task = reject_task(open_store(ctx), task_id, reason)
    if as_json:
        emit_json(task.to_dict())
        return
    click.echo(f"rejected {task_id}: reopened with the reason as its handoff")
