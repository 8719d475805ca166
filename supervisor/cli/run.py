"""`fleet supervisor`, `fleet tasks`, `fleet task`, `fleet kill|cancel|retry|pause|resume`."""

from __future__ import annotations

import time
from typing import Any

import click

from supervisor.cli.ids import TASK_ID
from supervisor.cli.main import emit_json, open_store
from supervisor.cli.numbers import duration
from supervisor.errors import BadInput


@click.group()
def supervisor() -> None:
    """Start, stop and watch the supervisor that runs the tasks."""


@supervisor.command()
@click.option("--foreground", is_flag=True, help="Run in this terminal instead of the background.")
@click.option("--json", "as_json", is_flag=True, help="Its pid and log as JSON.")
@click.pass_context
def start(ctx: click.Context, foreground: bool, as_json: bool) -> None:
    """Start the supervisor (one per home per host)."""
    from supervisor.run import daemon as service

    store = open_store(ctx)
    if foreground:
        _loop(store, "foreground", as_json=as_json)
        return
    if (info := service.running(store)) is not None:
        raise service.AlreadyRunning(
            f"a supervisor already runs for {store.home} (pid {info.pid})",
            hint="`fleet supervisor status` shows it; `fleet supervisor stop` stops it",
        )
    pid = service.spawn_daemon(store)
    if as_json:
        emit_json({"started": True, "pid": pid, "log": str(service.log_path(store))})
        return
    click.echo(f"supervisor started (pid {pid}); log: {service.log_path(store)}")


@supervisor.command()
@click.option(
    "--now", is_flag=True, help="Stop the running agents too (their tasks go back to open)."
)
@click.option("--timeout", type=float, default=630.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="What was stopped, as JSON.")
@click.pass_context
def stop(ctx: click.Context, now: bool, timeout: float, as_json: bool) -> None:
    """Stop claiming and let running agents finish (or stop them with --now); while it waits,
    it says for which agents."""
    from supervisor.cli import supervising
    from supervisor.run import daemon as service

    store = open_store(ctx)
    waiter = supervising.stop_waiter(store, timeout, quiet=as_json)
    info = service.signal_stop(store, now, timeout, waiter)
    if as_json:
        emit_json({"was_running": info is not None, "pid": info.pid if info else None})
        return
    click.echo(
        "no supervisor is running" if info is None else f"supervisor (pid {info.pid}) stopped"
    )


@supervisor.command()
@click.option("--json", "as_json", is_flag=True, help="The state and the counts as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Is a supervisor running: pid, uptime, running and queued counts, paused."""
    import psutil

    from supervisor.cli import supervising, views
    from supervisor.queue import configure
    from supervisor.run import containment
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
        "paused": False,
        "config_error": "",
        "containment": containment.describe(),
        "home": str(store.home),
        **supervising.state(store, info),
    }
    try:
        data["paused"] = configure.current(store).paused
    except BadInput as exc:  # a broken config.toml: the supervisor claims nothing
        data["config_error"] = exc.message
    if info and psutil.pid_exists(info.pid):
        proc = psutil.Process(info.pid)
        data["rss_mb"] = round(proc.memory_info().rss / 1e6, 1)
    if as_json:
        emit_json(data)
        return
    if info is None:
        click.echo(f"supervisor: not running ({store.home})")
    elif data["state"] == "stopping":
        click.echo(
            f"supervisor: stopping ({data['stopping_how']}, for {duration(data['stopping_since'])}"
            f"), pid {info.pid}; waiting for: {', '.join(data['waiting_for']) or 'nothing'}"
        )
    else:
        click.echo(f"supervisor: running, pid {info.pid}, up {duration(data['uptime_seconds'])}")
    paused = " (paused: claiming nothing new)" if data["paused"] else ""
    counts = f"agents running: {data['agents']}   ready: {data['queued']}"
    click.echo(f"{counts}   blocked: {data['blocked']}{paused}")
    click.echo(f"process containment: {data['containment']}")
    if data["config_error"]:
        click.echo(f"claiming nothing: {data['config_error']} (`fleet config edit`)")


def _ready_ids(store: Any) -> list[str]:
    store.cache.sync()
    return list(store.cache.ready(time.time(), waiting=True))


@supervisor.command("run")
@click.option("--once", is_flag=True, help="One tick, then exit.")
@click.option(
    "--until-idle", is_flag=True, help="Work until nothing is ready or running, then exit 0."
)
@click.option("--daemon", is_flag=True, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="What it ran, as JSON.")
@click.pass_context
def run_cmd(ctx: click.Context, once: bool, until_idle: bool, daemon: bool, as_json: bool) -> None:
    """Run the supervisor in this process (for scripts and CI); ends saying what it ran."""
    mode = "once" if once else "until-idle" if until_idle else "daemon" if daemon else "foreground"
    _loop(open_store(ctx), mode, once=once, until_idle=until_idle, as_json=as_json)


def _loop(
    store: Any, mode: str, once: bool = False, until_idle: bool = False, as_json: bool = False
) -> None:
    from supervisor.cli import supervising
    from supervisor.run import daemon as service

    lock = service.acquire(store, mode)
    progress = supervising.is_tty() and until_idle and not as_json
    runlog = supervising.RunLog(progress)
    try:
        loop = service.Loop(store, runlog)
        loop.install_signals()
        report = loop.run(until_idle=until_idle, once=once)
    finally:
        lock.release()
    if progress:
        click.echo("", err=True)
    summary = runlog.summary(store, report)
    if as_json:
        emit_json(summary)
    elif once or until_idle or mode == "foreground":
        click.echo(supervising.summary_line(summary))
    if loop.supervisor.config_error and (once or until_idle):
        from supervisor.errors import FleetError

        raise FleetError(loop.supervisor.config_error, hint="`fleet config edit` repairs it")


# -- control -------------------------------------------------------------------------------------


@click.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--requeue", is_flag=True, help="Open it again: a supervisor claims it anew.")
@click.option(
    "--block", "block", default="", metavar="REASON", help="Block the task with this reason."
)
@click.option("--json", "as_json", is_flag=True, help="Print what happened as one JSON object.")
@click.pass_context
def kill(ctx: click.Context, task_id: str, requeue: bool, block: str, as_json: bool) -> None:
    """Stop a task's running attempt, whole process tree, and hold the task.

    A held task is not claimed again until `fleet retry ID` (a fresh set of attempts) or
    `fleet resume ID` (its attempts kept). --requeue opens it again at once; --block blocks it
    with a reason.
    """
    from supervisor.run.control import kill as kill_task

    if requeue and block:
        from supervisor.errors import BadInput

        raise BadInput("--requeue and --block contradict each other", hint="choose one")
    then = "requeue" if requeue else "block" if block else "hold"
    stopped = kill_task(open_store(ctx), task_id, then, block)
    emit_json(stopped.to_dict()) if as_json else click.echo(stopped.message())


@click.command()
@click.argument("task_id", type=TASK_ID)
@click.option("-r", "--reason", default="", help="Why it is cancelled (kept in close_reason).")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as one JSON object.")
@click.pass_context
def cancel(ctx: click.Context, task_id: str, reason: str, as_json: bool) -> None:
    """Close a task as not done; a running attempt is stopped first."""
    from supervisor.run.control import cancel as cancel_task

    stopped = cancel_task(open_store(ctx), task_id, reason)
    emit_json(stopped.to_dict()) if as_json else click.echo(stopped.message())


@click.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--force", is_flag=True, help="Run a closed, done task again too.")
@click.option("--json", "as_json", is_flag=True, help="Print the task as one JSON object.")
@click.pass_context
def retry(ctx: click.Context, task_id: str, force: bool, as_json: bool) -> None:
    """Open a task again, now, with a fresh set of attempts (earlier ones stay in its history)."""
    from supervisor.run.control import retry as retry_task

    task = retry_task(open_store(ctx), task_id, force)
    emit_json(task.to_dict()) if as_json else click.echo(f"{task.id} is open again")


@click.command()
@click.option("--json", "as_json", is_flag=True, help='`{"paused": true}`.')
@click.pass_context
def pause(ctx: click.Context, as_json: bool) -> None:
    """Claim no new tasks; running agents go on."""
    from supervisor.run.control import set_paused

    set_paused(open_store(ctx), True)
    if as_json:
        emit_json({"paused": True})
        return
    click.echo("paused: no new task will start (`fleet resume` to go on)")


@click.command()
@click.argument("task_id", required=False, type=TASK_ID)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='The task as JSON (without TASK_ID: `{"paused": false}`).',
)
@click.pass_context
def resume(ctx: click.Context, task_id: str | None, as_json: bool) -> None:
    """Claim tasks again after `fleet pause`; with TASK_ID, release a task `fleet kill` held."""
    from supervisor.run.control import resume as resume_task
    from supervisor.run.control import set_paused

    if task_id is None:
        set_paused(open_store(ctx), False)
        emit_json({"paused": False}) if as_json else click.echo("resumed")
        return
    task = resume_task(open_store(ctx), task_id)
    emit_json(task.to_dict()) if as_json else click.echo(f"{task.id} is open again")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Its home, repository and tasks as JSON.")
@click.pass_context
def demo(ctx: click.Context, as_json: bool) -> None:
    """Run the whole loop on a throwaway home (or an empty --home): shell tasks, a retry, a
    handoff. No account."""
    from supervisor.cli import demo as demo_mod
    from supervisor.cli import views
    from supervisor.cli.demo_home import explore_hint, given_home

    home = given_home(ctx.find_root().obj)
    if as_json:
        store, ids, repo = demo_mod.run(lambda line: None, home=home)
        emit_json({"home": str(store.home), "tasks": ids, "repository": str(repo)})
        return
    store, ids, repo = demo_mod.run(click.echo, home=home)
    click.echo("$ fleet tasks --all")
    from supervisor.cli.tasks import render

    rows = views.rows(store, show_all=True)
    click.echo((render(rows, None) if rows else "no tasks") + "\n")
    ship = store.get(ids["ship"])
    flaky = store.get(ids["flaky"])
    click.echo(f"$ fleet task {flaky.id} attempts")
    for a in flaky.attempts:
        click.echo(f"  #{a['n']} {a['outcome']} {a.get('reason', '')}")
    click.echo(f"\n$ fleet task {ship.id} log")
    click.echo((views.artifact(store, ship, 1, "log.txt") or b"").decode())
    click.echo(f"$ fleet task {ship.id} knowledge")
    click.echo((views.artifact(store, ship, 1, "knowledge.md") or b"").decode())
    click.echo(f"$ git -C {repo} log main   # where the work ended up: the agents' commits")
    click.echo(demo_mod.base_log(repo))
    click.echo(explore_hint(store.home, given=home is not None))
