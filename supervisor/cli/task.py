"""`fleet task ID [log|plan|knowledge|result|usage|attempts]`: one task in depth.

`fleet task ID` alone is an overview. ID may be a unique start of an id; `--help` works whatever
ID is. The log holds what the agent printed on stderr too, as a section of its own.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from supervisor import lifecycle
from supervisor.cli.ids import IdGroup, help_asked, resolve
from supervisor.cli.main import emit_json, open_store, table
from supervisor.cli.numbers import duration, money, tokens
from supervisor.cli.output import terminal_text
from supervisor.errors import BadInput

F = TypeVar("F", bound=Callable[..., Any])
STDERR_HEADING = "--- stderr ---"
TAIL = 10  # lines of the log in the overview


@click.group(cls=IdGroup, invoke_without_command=True)
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="The overview as JSON.")
@click.pass_context
def task(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """One task in depth: `fleet task ID` for an overview, or log|plan|knowledge|result|usage|
    attempts. ID may be a unique start of an id."""
    if help_asked(ctx):
        ctx.obj = task_id
        return
    ctx.obj = resolve(ctx, task_id)
    if ctx.invoked_subcommand is None:
        from supervisor.cli.gate import print_gate

        data = overview(open_store(ctx), ctx.obj)
        if as_json:
            emit_json(data)
            return
        click.echo(render_overview(data))
        if data["gate"]:
            print_gate(data["gate"])


def overview(store: Any, task_id: str) -> dict[str, Any]:
    from supervisor.cli import checks, views

    found = store.get(task_id)
    usage = views.usage_report(found)
    last = found.attempts[-1] if found.attempts else {}
    run = found.run.to_dict() if found.run else {}
    n = int(run.get("attempt") or len(found.attempts))
    log_tail: list[str] = []
    stderr_tail: list[str] = []
    if n:
        log_tail = _text(views.artifact(store, found, n, "log.txt")).splitlines()[-TAIL:]
        stderr_tail = _text(views.artifact(store, found, n, "stderr.log")).splitlines()[-TAIL:]
    workdir = str(run.get("workdir") or last.get("workdir") or "")
    return {
        **_planned(found),
        "id": found.id,
        "title": found.title,
        "status": found.status,
        "why": found.status_reason or found.close_reason,
        "coder": checks.effective_coder(store, found),
        "model": run.get("model") or last.get("model") or found.model,
        "cwd": found.cwd,
        "workdir": workdir,
        "branch": f"fleet/{found.id}" if workdir and workdir != found.cwd else "",
        "attempts": len(found.attempts),
        "running": run.get("attempt"),
        "usage": usage["total"],
        "log_tail": log_tail,
        "stderr_tail": stderr_tail,
        "gate": _gate(store, found),
        **_delivered(store, found),
    }


def _delivered(store: Any, found: Any) -> dict[str, Any]:
    """Where its work is: branch, base, worktree, delivery state (supervisor.cli.work)."""
    from supervisor.cli import work

    return {"delivery": work.where(store, found), "work_lines": work.lines(store, found)}


def _planned(found: Any) -> dict[str, Any]:
    """Its role and how it was chosen, and the subtasks it made."""
    return {
        "role": found.role,
        "route": found.route,
        "subtasks": list(found.subtasks),
        "waiting_on_subtasks": found.waiting_on_subtasks,
    }


def _gate(store: Any, found: Any) -> dict[str, Any] | None:
    """Its approval gate, when it has one or was reviewed (None otherwise)."""
    from supervisor.cli.gate import gate_report

    if not (found.extra.get("requires") or found.extra.get("approvals") or found.role):
        return None
    report = gate_report(store, found.id)
    return report if report["requires"] or report["reviews"] or report["approvals"] else None


def render_overview(d: dict[str, Any]) -> str:
    u = d["usage"]
    lines = [
        f"{d['id']}  {d['title']}",
        f"status: {d['status']}" + (f"   why: {d['why']}" if d["why"] else ""),
        f"coder: {'/'.join(x for x in (d['coder'], d['model']) if x)}   cwd: {d['cwd']}",
    ]
    if d["role"]:
        route = d["route"] or {}
        how = f" (by {route.get('by')}: {route.get('reason')})" if route else ""
        lines.append(f"role: {d['role']}{how}")
    if d["subtasks"]:
        waits = " (waits for them)" if d["waiting_on_subtasks"] else ""
        lines.append(f"subtasks: {', '.join(d['subtasks'])}{waits}")
    if d["branch"] and not d.get("work_lines"):
        lines.append(f"branch: {d['branch']}   worktree: {d['workdir']}")
    running = f" (attempt {d['running']} running)" if d["running"] else ""
    lines.append(
        f"attempts: {d['attempts']}{running}   time: {duration(u['seconds'])}   tokens in"
        f" {tokens(u['input_tokens'])}, out {tokens(u['output_tokens'])}"
        f"   cost {money(u['cost_usd'])}"
    )
    lines += d.get("work_lines") or []
    if d["log_tail"] or d["stderr_tail"]:
        lines += ["", f"last lines of the log (`fleet task {d['id']} log`):"]
        lines += ["  " + x for x in d["log_tail"]]
        if d["stderr_tail"]:
            lines += ["  " + STDERR_HEADING] + ["  " + x for x in d["stderr_tail"]]
    elif not d["attempts"] and not d["running"]:
        lines += ["", "it has not run yet"]
    return "\n".join(lines)


def _text(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


def _attempt_opt(f: Any) -> Any:
    return click.option(
        "--attempt", "n", type=click.IntRange(min=1), help="Which attempt (default: the last)."
    )(f)


def _json_opt(what: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=f"{what} as JSON.")


@task.command("log")
@_attempt_opt
@click.option("--raw", is_flag=True, help="The output exactly as the agent printed it.")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing while it runs (waits for it to start)."
)
@_json_opt("The log and the stderr")
@click.pass_context
def task_log(ctx: click.Context, n: int | None, raw: bool, follow: bool, as_json: bool) -> None:
    """The attempt's log, rendered for people (--raw: as printed), then what it wrote on stderr."""
    from supervisor.cli import views

    task_id = ctx.obj
    store = open_store(ctx)
    found = store.get(task_id)
    if follow and n is None and not found.run and not found.attempts:
        found = _wait_for_start(store, task_id)
    n = views.attempt_number(found, n)
    name = "output.log" if raw else "log.txt"
    path = views.live_path(store, found, n, name)
    if follow and path is not None and not as_json:
        shown = _follow(store, task_id, n, path)
        found = store.get(task_id)  # the attempt is over: the rest is in its record
        rest = (views.artifact(store, found, n, name) or b"")[shown:]
        click.echo(terminal_text(rest.decode(errors="replace")), nl=False)
        _echo_stderr(_text(views.artifact(store, found, n, "stderr.log")))
        return
    out = _text(views.artifact(store, found, n, name))
    err = _text(views.artifact(store, found, n, "stderr.log"))
    if as_json:
        emit_json({"task": task_id, "attempt": n, "raw": raw, "log": out, "stderr": err})
        return
    click.echo(terminal_text(out), nl=False)
    if out and not out.endswith("\n"):
        click.echo()
    _echo_stderr(err)
    if not out and not err:
        reason = _reason(found, n)
        click.echo(
            f"fleet: attempt {n} of {task_id} printed nothing"
            + (f"; it ended: {reason}" if reason else ""),
            err=True,
        )


def _echo_stderr(err: str) -> None:
    if err:
        click.echo(STDERR_HEADING)
        click.echo(terminal_text(err), nl=not err.endswith("\n"))


def _reason(found: Any, n: int) -> str:
    for a in found.attempts:
        if a.get("n") == n:
            return f"{a.get('outcome', '')}: {a.get('reason', '')}".strip(": ")
    return ""


def _wait_for_start(store: Any, task_id: str) -> Any:
    """`log -f` on a task that has not started: wait until its first attempt does."""
    click.echo(f"fleet: waiting for {task_id} to start (Ctrl-C to stop)", err=True)
    while True:
        found = store.get(task_id)
        if found.run or found.attempts:
            return found
        if found.status in ("closed", "blocked"):  # it will not start by itself
            raise BadInput(
                f"task {task_id} is {found.status} and never ran",
                hint=f"`fleet bd reopen {task_id}` to queue it again",
            )
        time.sleep(0.2)


def _follow(store: Any, task_id: str, n: int, path: Any) -> int:
    """Print the live file as it grows until the attempt ends; how many bytes were printed."""
    offset = 0
    while True:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            click.echo(terminal_text(chunk.decode(errors="replace")), nl=False)
        elif lifecycle.current(store.get(task_id), n) is None:
            return offset
        else:
            time.sleep(0.2)


def _artifact_command(name: str, filename: str, doc: str) -> None:
    @task.command(name, help=doc)
    @_attempt_opt
    @_json_opt(f"The {name}")
    @click.pass_context
    def show(ctx: click.Context, n: int | None, as_json: bool) -> None:
        from supervisor.cli import views

        task_id = ctx.obj
        store = open_store(ctx)
        found = store.get(task_id)
        n = views.attempt_number(found, n)
        data = views.artifact(store, found, n, filename)
        if data is None:
            hint = _where_to_look(store, found, n)
            raise BadInput(f"attempt {n} of {task_id} has no {name} recorded", hint=hint)
        text = _text(data)
        if as_json:
            value: Any = text
            if filename.endswith(".json"):
                with contextlib.suppress(ValueError):
                    value = json.loads(text)
            emit_json({"task": task_id, "attempt": n, name: value})
            return
        click.echo(terminal_text(text), nl=False)


def _where_to_look(store: Any, found: Any, n: int) -> str:
    """Where an attempt's story is: its log if it printed anything, else its reason."""
    from supervisor.cli import views

    printed = any(views.artifact(store, found, n, f) for f in ("log.txt", "stderr.log"))
    if printed:
        return f"see what it printed: `fleet task {found.id} log --attempt {n}`"
    reason = _reason(found, n)
    why = f"it ended: {reason}; " if reason else ""
    return f"it printed nothing; {why}`fleet task {found.id} attempts` lists every attempt"


_artifact_command("plan", "plan.md", "The plan the agent stated before acting.")
_artifact_command("knowledge", "knowledge.md", "The exact context the agent was given.")
_artifact_command("result", "result.json", "The result the agent wrote (JSON).")


@task.command("usage")
@_json_opt("Each attempt and the total")
@click.pass_context
def task_usage(ctx: click.Context, as_json: bool) -> None:
    """Tokens, cost and time of each attempt and in total."""
    from supervisor.cli import views

    report = views.usage_report(open_store(ctx).get(ctx.obj))
    if as_json:
        emit_json(report)
        return
    rows = []
    for a in [*report["attempts"], {**report["total"], "n": "total"}]:
        rows.append(
            [
                a.get("n"),
                a.get("outcome") or "",
                a.get("model") or "",
                a.get("account") or "",
                duration(a.get("seconds")),
                tokens(a.get("input_tokens")),
                tokens(a.get("output_tokens")),
                tokens(a.get("cache_read_tokens")),
                tokens(a.get("cache_write_tokens")),
                money(a.get("cost_usd")),
            ]
        )
    headers = ["N", "OUTCOME", "MODEL", "ACCOUNT", "TIME", "IN", "OUT", "CACHE READ"]
    click.echo(table(rows, [*headers, "CACHE WRITE", "COST"]))


@task.command("attempts")
@_json_opt("Every attempt")
@click.pass_context
def task_attempts(ctx: click.Context, as_json: bool) -> None:
    """Every attempt: outcome, reason, exit code, times."""
    found = open_store(ctx).get(ctx.obj)
    running = (
        [{"n": found.run.attempt, "outcome": "running", **found.run.to_dict()}] if found.run else []
    )
    if as_json:
        emit_json(found.attempts + running)
        return
    rows = [
        [
            a.get("n"),
            a.get("outcome"),
            a.get("exit_code", ""),
            str(a.get("started_at", ""))[:19].replace("T", " "),
            duration(a.get("seconds")) if a.get("outcome") != "running" else "",
            a.get("reason", "") if a.get("outcome") != "running" else "",
        ]
        for a in found.attempts + running
    ]
    click.echo(
        table(rows, ["N", "OUTCOME", "EXIT", "STARTED", "TIME", "REASON"])
        if rows
        else "no attempts yet"
    )


@task.command("diff")
@_attempt_opt
@click.option("--stat", is_flag=True, help="Files and lines changed, not the diff.")
@_json_opt("The work record and its diff")
@click.pass_context
def task_diff(ctx: click.Context, n: int | None, stat: bool, as_json: bool) -> None:
    """What the attempt changed on the task's branch (the diff recorded when it ended)."""
    from supervisor.cli import work

    work.diff(ctx, ctx.obj, n, stat, as_json)


@task.command("merge")
@_json_opt("The task after the merge")
@click.pass_context
def task_merge(ctx: click.Context, as_json: bool) -> None:
    """Merge the task's branch onto its base branch now (with the check, as the queue does)."""
    from supervisor.cli import work

    work.merge_now(ctx, ctx.obj, as_json)


def _gate_command() -> None:
    """`fleet task ID gate`: its approval gate (supervisor.cli.gate)."""
    from supervisor.cli.gate import task_gate

    task.add_command(task_gate, "gate")


_gate_command()
