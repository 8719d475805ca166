"""`fleet attach ID`: watch a running agent in tmux, and take it over where its coder has an
interactive session.

The agent itself never runs inside tmux: it runs headless under the supervisor, its output in
files. `fleet attach` opens (or reopens) a tmux session `fleet-<id>` whose first window follows
the agent's log as `fleet task ID log -f` does (to its last line) and whose second follows its
raw output and stderr, then attaches the terminal to it. Detaching (Ctrl-b d) or closing the
terminal leaves the agent running; `fleet attach` again returns to the same session.

`--take-over` stops the headless attempt, holds the task (blocked, with the reason "taken over
in tmux") so that no supervisor starts it again, and opens the coder's own interactive session
on the same conversation in the attempt's working directory: `claude --resume SESSION`, `codex
resume SESSION`, `gemini --resume latest`, `opencode --session SESSION`. When done, `fleet retry
ID` hands the task back to the fleet (or `fleet bd close ID`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store
from supervisor.errors import BadInput, FleetError

TAKEN_OVER = "taken over in tmux (fleet attach --take-over); `fleet retry {id}` hands it back"


class Missing(FleetError):
    """A program this needs is not installed (exit 1: the host lacks it)."""


def running_attempt(store: Any, task: Any) -> int:
    """The number of the attempt running now (0: none)."""
    from supervisor.cli import views

    if task.run is None:
        return 0
    return int(views.live_status(store, task).get("attempt") or 0)


def session_name(task_id: str) -> str:
    return f"fleet-{task_id}"


def interactive_argv(coder: str, session_id: str) -> list[str] | None:
    """The coder's interactive command that continues the agent's conversation (None: it has
    none, or the session is not known yet)."""
    if coder == "claude" and session_id:
        return ["claude", "--resume", session_id]
    if coder == "codex" and session_id:
        return ["codex", "resume", session_id]
    if coder == "gemini":
        return ["gemini", "--resume", "latest"]
    if coder == "opencode":
        return ["opencode", "--session", session_id] if session_id else ["opencode", "--continue"]
    return None


CONFIG_ENV = {"claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME"}


def fleet_argv(home: Path, *args: str) -> str:
    """This fleet (the same interpreter and home) as a shell command line."""
    return shlex.join([sys.executable, "-m", "supervisor", "--home", str(home), *args])


def tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=check)


def has_session(name: str) -> bool:
    return tmux("has-session", "-t", f"={name}", check=False).returncode == 0


def open_session(store: Any, task: Any) -> str:
    """Create the task's tmux session unless it exists; its name."""
    name = session_name(task.id)
    if has_session(name):
        return name
    from supervisor.cli import views

    n = running_attempt(store, task)
    root = views.live_path(store, task, n, "output.log")
    which = ["--attempt", str(n)] if n else []
    follow = fleet_argv(store.home, "task", task.id, "log", "--follow", *which)
    watch = f"{follow}; echo; echo '[fleet] the attempt ended; Ctrl-b d to leave'; sleep 86400"
    tmux("new-session", "-d", "-s", name, "-n", "log", "-x", "200", "-y", "50", watch)
    tmux("set-option", "-t", name, "remain-on-exit", "on")
    if root is not None:
        raw = shlex.join(["tail", "-n", "+1", "-F", str(root), str(root.with_name("stderr.log"))])
        tmux("new-window", "-d", "-t", name, "-n", "raw", raw)
    return name


def take_over(store: Any, task: Any) -> str:
    """Stop the headless attempt, hold the task, open the coder's interactive session on the
    same conversation in a new window of the task's tmux session; the session's name."""
    from supervisor.cli import views
    from supervisor.run.control import kill

    live = views.live_status(store, task)
    coder = str(live.get("coder") or task.coder or "")
    argv = interactive_argv(coder, str(live.get("session_id") or ""))
    if argv is None:
        raise BadInput(
            f"task {task.id} runs on coder {coder or 'shell'}, which has no interactive session"
            " to take over" + (" yet" if coder in ("claude", "codex") else ""),
            hint=f"watch it with `fleet attach {task.id}`",
        )
    if shutil.which(argv[0]) is None:
        raise Missing(
            f"{argv[0]} is not on PATH here",
            hint=f"install it, or `fleet attach {task.id}` to watch",
        )
    workdir = str(live.get("workdir") or task.cwd or ".")
    env = []
    account = str(live.get("account") or "")
    if account and coder in CONFIG_ENV:
        from supervisor import accounts
        from supervisor.queue import configure

        found = configure.current(store).accounts.get(account)
        folder = accounts.config_dir(found) if found else None
        if folder is not None:
            env = ["-e", f"{CONFIG_ENV[coder]}={folder}"]
    name = open_session(store, task)
    kill(store, task.id, "block", TAKEN_OVER.format(id=task.id))
    note = (
        f"[fleet] {argv[0]} ended; `fleet retry {task.id}` hands the task back to the fleet;"
        " Enter closes this window"
    )
    command = f"{shlex.join(argv)}; echo; echo {shlex.quote(note)}; read _"
    tmux("new-window", "-t", name, "-n", "agent", "-c", workdir, *env, command)
    return name


@click.command()
@click.argument("task_id")
@click.option(
    "--take-over",
    is_flag=True,
    help="Stop the headless agent and continue its conversation interactively (claude, codex,"
    " gemini, opencode); the task is held until `fleet retry`.",
)
@click.option("--no-attach", is_flag=True, help="Open the tmux session and print its name only.")
@click.option("--json", "as_json", is_flag=True, help="With --no-attach: the session as JSON.")
@click.pass_context
def attach(
    ctx: click.Context,
    task_id: str,
    take_over: bool,
    no_attach: bool,
    as_json: bool,
) -> None:
    """Watch a running agent in tmux (Ctrl-b d detaches; the agent goes on)."""
    from supervisor.model import check_id

    check_id(task_id)
    if shutil.which("tmux") is None:
        raise Missing("tmux is not installed", hint="install tmux (e.g. `apt install tmux`)")
    store = open_store(ctx)
    task = store.get(task_id)
    running = task.status == "in_progress" and task.run is not None
    if not running and (take_over or not has_session(session_name(task_id))):
        raise BadInput(
            f"task {task_id} is not running (status {task.status})",
            hint=f"its log: `fleet task {task_id} log`",
        )
    name = take_over_session(store, task) if take_over else open_or_reuse(store, task)
    if no_attach or as_json:
        if as_json:
            emit_json({"task": task_id, "session": name, "taken_over": take_over})
        else:
            click.echo(name)
        return
    if os.environ.get("TMUX"):
        os.execvp("tmux", ["tmux", "switch-client", "-t", f"={name}"])
    os.execvp("tmux", ["tmux", "attach-session", "-t", f"={name}"])


def open_or_reuse(store: Any, task: Any) -> str:
    if task.status != "in_progress" or task.run is None:
        return session_name(task.id)  # it ended; the session still shows how
    return open_session(store, task)


def take_over_session(store: Any, task: Any) -> str:
    if task.status != "in_progress" or task.run is None:
        raise BadInput(
            f"task {task.id} is not running: there is nothing to take over",
            hint=f"`fleet retry {task.id}` runs it again",
        )
    return take_over(store, task)
