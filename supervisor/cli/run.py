"""`fleet supervisor`, `fleet tasks`, `fleet task`, `fleet kill|retry|pause|resume`."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from supervisor.cli.main import color, emit_json, open_store, table
from supervisor.errors import BadInput


@click.group()
def supervisor() -> None:
    """Start, stop and watch the supervisor that runs the tasks."""


@supervisor.command()
@click.option("--foreground", is_flag=True, help="Run in this terminal instead of the background.")
@click.pass_context
def start(ctx: click.Context, foreground: bool) -> None:
    """Start the supervisor (one per home per host)."""
    from supervisor.run import daemon as service

    store = open_store(ctx)
    if foreground:
        _loop(store, "foreground")
        return
    if (info := service.running(store)) is not None:
        raise service.AlreadyRunning(
            f"a supervisor already runs for {store.home} (pid {info.pid})",
            hint="`fleet supervisor status` shows it; `fleet supervisor stop` stops it",
        )
    pid = service.spawn_daemon(store)
    click.echo(f"supervisor started (pid {pid}); log: {service.log_path(store)}")


@supervisor.command()
@click.option(
    "--now", is_flag=True, help="Stop the running agents too (their tasks go back to open)."
)
@click.option("--timeout", type=float, default=630.0, show_default=True, help="Seconds to wait.")
@click.pass_context
def stop(ctx: click.Context, now: bool, timeout: float) -> None:
    """Stop claiming and let running agents finish (or stop them with --now)."""
    from supervisor.run import daemon as service

    info = service.signal_stop(open_store(ctx), now, timeout)
    click.echo(
        "no supervisor is running" if info is None else f"supervisor (pid {info.pid}) stopped"
    )


@supervisor.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Is a supervisor running: pid, uptime, running and queued counts, paused."""
    import psutil

    from supervisor.cli import views
    from supervisor.queue import configure
    from supervisor.run import daemon as service

    store = open_store(ctx)
    info = service.running(store)
    rows = views.rows(store)
    data: dict[str, Any] = {
        "running": info is not None,
        "pid": info.pid if info else None,
        "uptime_seconds": round(time.time() - info.started_at, 1) if info else None,
        "agents": sum(1 for r in rows if r["status"] == "in_progress"),
        "queued": len(_ready_ids(store)),
        "blocked": sum(1 for r in rows if r["status"] == "blocked"),
        "paused": configure.current(store).paused,
        "home": str(store.home),
    }
    if info and psutil.pid_exists(info.pid):
        proc = psutil.Process(info.pid)
        data["rss_mb"] = round(proc.memory_info().rss / 1e6, 1)
    if as_json:
        emit_json(data)
        return
    if info is None:
        click.echo(f"supervisor: not running ({store.home})")
    else:
        click.echo(f"supervisor: running, pid {info.pid}, up {_duration(data['uptime_seconds'])}")
    paused = " (paused: claiming nothing new)" if data["paused"] else ""
    counts = f"agents running: {data['agents']}   ready: {data['queued']}"
    click.echo(f"{counts}   blocked: {data['blocked']}{paused}")


def _ready_ids(store: Any) -> list[str]:
    store.cache.sync()
    return list(store.cache.ready(time.time(), waiting=True))


@supervisor.command("run")
@click.option("--once", is_flag=True, help="One tick, then exit.")
@click.option(
    "--until-idle", is_flag=True, help="Work until nothing is ready or running, then exit 0."
)
@click.option("--daemon", is_flag=True, hidden=True)
@click.pass_context
def run_cmd(ctx: click.Context, once: bool, until_idle: bool, daemon: bool) -> None:
    """Run the supervisor in this process (for scripts and CI)."""
    mode = "once" if once else "until-idle" if until_idle else "daemon" if daemon else "foreground"
    _loop(open_store(ctx), mode, once=once, until_idle=until_idle)


def _loop(store: Any, mode: str, once: bool = False, until_idle: bool = False) -> None:
    from supervisor.run import daemon as service

    lock = service.acquire(store, mode)
    progress = _progress if (sys.stderr.isatty() and until_idle) else None
    try:
        loop = service.Loop(store, progress)
        loop.install_signals()
        report = loop.run(until_idle=until_idle, once=once)
    finally:
        lock.release()
    if progress:
        click.echo("", err=True)
    if once or until_idle:
        click.echo(f"running {report.running}, waiting {report.waiting}")


def _progress(report: Any) -> None:
    click.echo(f"\rrunning {report.running}  waiting {report.waiting}   ", nl=False, err=True)


# -- fleet tasks ---------------------------------------------------------------------------------


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include closed tasks.")
@click.option("--watch", is_flag=True, help="Redraw every second until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tasks(ctx: click.Context, show_all: bool, watch: bool, as_json: bool) -> None:
    """Every agent at a glance: status, coder, attempt, time, idle, tokens, cost."""
    from supervisor.cli import views

    store = open_store(ctx)
    if as_json:
        emit_json(views.rows(store, show_all))
        return
    while True:
        text = _tasks_table(views.rows(store, show_all))
        if not watch:
            click.echo(text)
            return
        click.clear()
        click.echo(f"fleet tasks   {time.strftime('%H:%M:%S')}   (Ctrl-C to stop)\n{text}")
        time.sleep(1)


def _tasks_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no tasks"
    colors = {"in_progress": "yellow", "blocked": "red", "closed": "bright_black", "open": "green"}
    body = []
    for r in rows:
        coder = "/".join(x for x in (r["coder"], r["model"]) if x)
        body.append(
            [
                r["id"],
                color(r["status"], colors.get(r["status"], "white")),
                coder,
                r["account"],
                r["attempt"] or "",
                _duration(r["elapsed"]) if r["elapsed"] else "",
                _duration(r["idle"]) if r["idle"] is not None else "",
                _count(r["tokens_in"]),
                _count(r["tokens_out"]),
                f"${r['cost_usd']:.2f}" if r["cost_usd"] else "",
                f"{r['files']}f +{r['added']} -{r['deleted']}" if r.get("files") else "",
                _cut(r["title"], 40),
                r["cwd"],
                _cut(r["why"], 70) if r["status"] != "in_progress" else "",
            ]
        )
    return table(
        body,
        [
            "ID",
            "STATUS",
            "CODER",
            "ACCOUNT",
            "TRY",
            "ELAPSED",
            "IDLE",
            "IN",
            "OUT",
            "COST",
            "CHANGED",
            "TITLE",
            "CWD",
            "WHY",
        ],
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else f"{s // 60}m{s % 60:02d}s"
        if s >= 60
        else f"{s}s"
    )


def _count(n: int) -> str:
    return "" if not n else f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- fleet task ID ... ---------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="With no subcommand: the task as JSON.")
@click.pass_context
def task(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """One agent in depth: `fleet task ID [log|plan|knowledge|result|diff|merge|usage|attempts]`."""
    from supervisor.model import check_id

    ctx.obj = check_id(task_id)
    if ctx.invoked_subcommand is None:
        from supervisor.cli import work

        work.show(ctx, task_id, as_json)


def _attempt_opt(f: Any) -> Any:
    return click.option(
        "--attempt", "n", type=click.IntRange(min=1), help="Which attempt (default: the last)."
    )(f)


@task.command("log")
@_attempt_opt
@click.option("--raw", is_flag=True, help="The output exactly as the agent printed it.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the attempt runs.")
@click.pass_context
def task_log(ctx: click.Context, n: int | None, raw: bool, follow: bool) -> None:
    """The attempt's log, rendered for people (--raw: as printed)."""
    task_id = ctx.obj
    from supervisor.cli import views

    store = open_store(ctx)
    found = store.get(task_id)
    n = views.attempt_number(found, n)
    name = "output.log" if raw else "log.txt"
    path = views.live_path(store, found, n, name)
    if follow and path is not None:
        _follow(store, task_id, n, path)
        return
    data = views.artifact(store, found, n, name)
    click.echo((data or b"").decode(errors="replace"), nl=False)


def _follow(store: Any, task_id: str, n: int, path: Any) -> None:
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
            click.echo(chunk.decode(errors="replace"), nl=False)
        elif (store.get(task_id).run or {}).get("attempt") != n:
            return
        else:
            time.sleep(0.2)


def _artifact_command(name: str, filename: str, doc: str) -> None:
    @task.command(name, help=doc)
    @_attempt_opt
    @click.pass_context
    def show(ctx: click.Context, n: int | None) -> None:
        from supervisor.cli import views

        task_id = ctx.obj
        store = open_store(ctx)
        found = store.get(task_id)
        n = views.attempt_number(found, n)
        data = views.artifact(store, found, n, filename)
        if data is None:
            raise BadInput(
                f"attempt {n} of {task_id} has no {name} recorded", hint=f"fleet task {task_id} log"
            )
        click.echo(data.decode(errors="replace"), nl=False)


_artifact_command("plan", "plan.md", "The plan the agent stated before acting.")
_artifact_command("knowledge", "knowledge.md", "The exact context the agent was given.")
_artifact_command("result", "result.json", "The result the agent wrote (JSON).")


@task.command("diff")
@_attempt_opt
@click.option("--stat", is_flag=True, help="Files and lines changed, not the diff.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def task_diff(ctx: click.Context, n: int | None, stat: bool, as_json: bool) -> None:
    """What the attempt changed on the task's branch (the diff recorded when it ended)."""
    from supervisor.cli import work

    work.diff(ctx, ctx.obj, n, stat, as_json)


@task.command("merge")
@click.pass_context
def task_merge(ctx: click.Context) -> None:
    """Merge the task's branch onto its base branch now (with the check, as the queue does)."""
    from supervisor.cli import work

    work.merge_now(ctx, ctx.obj)


@task.command("usage")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def task_usage(ctx: click.Context, as_json: bool) -> None:
    """Tokens, cost and time of each attempt and in total."""
    task_id = ctx.obj
    from supervisor.cli import views

    report = views.usage_report(open_store(ctx).get(task_id))
    if as_json:
        emit_json(report)
        return
    keys = [
        "n",
        "outcome",
        "model",
        "account",
        "seconds",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
    ]
    rows = [
        [a.get(k, "") if a.get(k) is not None else "" for k in keys] for a in report["attempts"]
    ]
    total = report["total"]
    rows.append(
        [
            "total",
            "",
            "",
            "",
            total["seconds"],
            total["input_tokens"],
            total["output_tokens"],
            total["cache_read_tokens"],
            total["cache_write_tokens"],
            total["cost_usd"],
        ]
    )
    click.echo(table(rows, [k.replace("_tokens", "").upper() for k in keys]))


@task.command("attempts")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def task_attempts(ctx: click.Context, as_json: bool) -> None:
    """Every attempt: outcome, reason, exit code, times."""
    task_id = ctx.obj
    found = open_store(ctx).get(task_id)
    if as_json:
        emit_json(
            found.attempts
            + (
                [{"n": found.run.get("attempt"), "outcome": "running", **found.run}]
                if found.run
                else []
            )
        )
        return
    rows = [
        [
            a.get("n"),
            a.get("outcome"),
            a.get("exit_code", ""),
            a.get("started_at", "")[:19],
            a.get("seconds", ""),
            a.get("reason", ""),
        ]
        for a in found.attempts
    ]
    if found.run:
        rows.append(
            [
                found.run.get("attempt"),
                "running",
                "",
                str(found.run.get("started_at", ""))[:19],
                "",
                "",
            ]
        )
    click.echo(
        table(rows, ["N", "OUTCOME", "EXIT", "STARTED", "SECONDS", "REASON"])
        if rows
        else "no attempts yet"
    )


# -- control -------------------------------------------------------------------------------------


@click.command()
@click.argument("task_id")
@click.option(
    "--block", "block", default="", metavar="REASON", help="Block the task with this reason."
)
@click.pass_context
def kill(ctx: click.Context, task_id: str, block: str) -> None:
    """Stop a task's running attempt, whole process tree; it goes back to open (or blocked)."""
    from supervisor.run.control import kill as kill_task

    found = kill_task(open_store(ctx), task_id, block)
    click.echo(
        f"killed {task_id}; it is {found.status}"
        + (f": {found.status_reason}" if found.status == "blocked" else "")
    )


@click.command()
@click.argument("task_id")
@click.pass_context
def retry(ctx: click.Context, task_id: str) -> None:
    """Open a blocked or failed task again with a fresh set of attempts."""
    from supervisor.run.control import retry as retry_task

    click.echo(f"{retry_task(open_store(ctx), task_id).id} is open again")


@click.command()
@click.pass_context
def pause(ctx: click.Context) -> None:
    """Claim no new tasks; running agents go on."""
    from supervisor.run.control import set_paused

    set_paused(open_store(ctx), True)
    click.echo("paused: no new task will start (`fleet resume` to go on)")


@click.command()
@click.pass_context
def resume(ctx: click.Context) -> None:
    """Claim tasks again after `fleet pause`."""
    from supervisor.run.control import set_paused

    set_paused(open_store(ctx), False)
    click.echo("resumed")


@click.command()
def demo() -> None:
    """Run the whole loop on a throwaway home: shell tasks, a retry, a handoff. No account."""
    from supervisor.cli import demo as demo_mod
    from supervisor.cli import views

    store, ids = demo_mod.run(click.echo)
    click.echo("$ fleet tasks --all")
    click.echo(_tasks_table(views.rows(store, show_all=True)) + "\n")
    ship = store.get(ids["ship"])
    flaky = store.get(ids["flaky"])
    click.echo(f"$ fleet task {flaky.id} attempts")
    for a in flaky.attempts:
        click.echo(f"  #{a['n']} {a['outcome']} {a.get('reason', '')}")
    click.echo(f"\n$ fleet task {ship.id} log")
    click.echo((views.artifact(store, ship, 1, "log.txt") or b"").decode())
    click.echo(f"$ fleet task {ship.id} knowledge")
    click.echo((views.artifact(store, ship, 1, "knowledge.md") or b"").decode())
    repo = store.home.parent / "repo"
    click.echo(f"$ git -C {repo} log main   # where the work ended up: the agents' commits")
    click.echo(demo_mod.base_log(store))
    click.echo(f"Explore it: export FLEET_HOME={store.home}; fleet tasks --all; fleet log")
