"""Starting claimed attempts: their working directory, knowledge, command and environment.

An agent CLI inherits the supervisor's environment minus `GIT_*` (a shell task only its
allow-list: `supervisor.run.environment`), plus `FLEET_HOME`,
`FLEET_TASK_ID`, `FLEET_ATTEMPT`, `FLEET_RESULT_FILE`, a private `TMPDIR`, and its account's
variables (or, with no account, the supervisor's own base-URL and key variables for its coder).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coders
from coders.base import Coder, Command, RunSpec
from supervisor import accounts
from supervisor.config import Config
from supervisor.model import Task
from supervisor.run import environment, knowledge, resume, sandbox, stack, triage, worktree
from supervisor.run.attempt import Attempt, live_files, write_json
from supervisor.run.process import TOKEN_ENV, Processes, SpawnError, new_token
from supervisor.store.store import Store

STARTERS = 4  # agents started at once (threads)
_FILES = threading.Lock()  # held while a coder's files are written


class LaunchError(Exception):
    """The attempt cannot start: a setup error (the task is blocked with this reason)."""


@dataclass
class Prepared:
    """A claimed attempt with all its agent needs, nothing of it written or started yet."""

    attempt: Attempt
    prompt: str  # the knowledge
    command: Command
    env: dict[str, str]
    fresh: Path | None = None  # a worktree made for this attempt: removed if it cannot start
    start: str = ""  # the commit its branch is at when the agent starts
    resumed: dict[str, Any] | None = None  # the session it resumes, and why


def prepare(store: Store, config: Config, task: Task, now: float) -> Prepared:
    """All a claimed attempt needs before its agent starts; LaunchError when it cannot start."""
    run = task.run
    assert run is not None, "prepare() takes a claimed task"
    n = run.attempt
    files = live_files(store.home, task.id, n)
    coder_name = run.coder
    try:
        coder = coders.get(coder_name)
    except KeyError:
        raise LaunchError(
            f"unknown coder {coder_name!r} (known: {', '.join(coders.names())})"
        ) from None
    attempt = Attempt(task.id, n, coder, coder.parser(), files, now, checkpoint_at=now)
    attempt.model, attempt.account = run.model, run.account
    entered = stack.Entered(Path(task.cwd))
    try:
        entered = _workdir(store, config, task)
        workdir = entered.workdir
        attempt.workdir = str(workdir)
        role_name = (task.run.role if task.run else "") or task.role
        role = config.roles.get(role_name) if role_name else None
        handbook = role.handbook if role else ""  # in the knowledge, not the system prompt
        resumed = resume.plan(task, coder.name, attempt.account)
        if resumed:
            prompt = resume.prompt(resumed, task, files.result, entered.notes)
        else:
            prompt = knowledge.build(
                task,
                workdir,
                files.result,
                store.cache.get,
                config.max_depth,
                triage.knowledge(task, config),
                handbook,
                entered.notes,
            )
        spec = run_spec(config, task, attempt, prompt, workdir, os.environ)
        spec.resume_session = resumed["session"] if resumed else ""
        attempt.parser, attempt.spec = coder.parser(spec), spec
        command = coder.command(spec)
    except SpawnError as exc:
        stack.discard(entered.fresh)
        raise LaunchError(exc.reason) from None
    except (worktree.WorktreeError, ValueError, KeyError, OSError) as exc:
        stack.discard(entered.fresh)
        raise LaunchError(str(exc)) from None
    base = agent_base_env()
    if coder.name == "shell":  # a command from a task: the allow-list only
        base = environment.shell_env(base, config.shell_env)
    env = {
        **base,
        "FLEET_HOME": str(store.home),
        "FLEET_TASK_ID": task.id,
        "FLEET_ATTEMPT": str(n),
        "FLEET_RESULT_FILE": str(files.result),
        "TMPDIR": str(files.root / "tmp"),
        **spec.account_env,
        **command.env,
        TOKEN_ENV: run.token or new_token(),
    }
    for name in command.unset_env:
        env.pop(name, None)
    if sandbox.wanted(config, task):  # bubblewrap around the agent
        try:
            rw = sandbox.writable(workdir, files.root, coder_name, spec.config_dir)
            command.argv = sandbox.argv(command.argv, workdir, rw, config.sandbox_network)
        except (sandbox.SandboxError, OSError) as exc:
            stack.discard(entered.fresh)
            raise LaunchError(str(exc)) from None
    return Prepared(attempt, prompt, command, env, entered.fresh, entered.start, resumed)


def try_prepare(store: Store, config: Config, task: Task, now: float) -> Prepared | LaunchError:
    """`prepare`, or why the attempt cannot start."""
    try:
        return prepare(store, config, task, now)
    except LaunchError as exc:
        return exc


def start_all(
    processes: Processes, prepared: list[Prepared | LaunchError]
) -> list[Attempt | LaunchError]:
    """Start the prepared agents, several at once: a start is mostly creating files and the
    fork and exec of the agent's wrapper, kernel work that threads overlap. For each, in order,
    its running attempt or why it did not start."""
    if len(prepared) <= 1:  # nothing to overlap: no thread
        return [_start(processes, p) for p in prepared]
    with ThreadPoolExecutor(min(STARTERS, len(prepared))) as pool:
        return list(pool.map(lambda p: _start(processes, p), prepared))


def _start(processes: Processes, prepared: Prepared | LaunchError) -> Attempt | LaunchError:
    """Write the attempt's live files and start its agent."""
    if isinstance(prepared, LaunchError):
        return prepared
    attempt, files = prepared.attempt, prepared.attempt.files
    shutil.rmtree(files.root, ignore_errors=True)
    (files.root / "tmp").mkdir(parents=True)
    try:
        files.knowledge.write_text(prepared.prompt, encoding="utf-8")
        if prepared.start:
            (files.root / "start").write_text(prepared.start)
        if prepared.resumed:
            resume.write(files.root, prepared.resumed)
        _write_files(prepared.command.files)
        attempt.handle = processes.spawn(
            prepared.command.argv,
            Path(attempt.workdir),
            prepared.env,
            files.stdout,
            files.stderr,
            files.rc,
        )
    except SpawnError as exc:
        stack.discard(prepared.fresh)
        return LaunchError(exc.reason)
    except OSError as exc:
        stack.discard(prepared.fresh)
        return LaunchError(str(exc))
    write_json(files.handle, attempt.handle.to_dict())
    return attempt


def _write_files(files: Mapping[Path, str]) -> None:
    """The files the coder's command needs, where they are missing. One thread at a time:
    attempts may share one (an account's configuration)."""
    with _FILES:
        for path, text in files.items():
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)


def _workdir(store: Store, config: Config, task: Task) -> stack.Entered:
    cwd = Path(task.cwd) if task.cwd else None
    if cwd is None or not cwd.is_dir():
        hint = f"fleet bd update {task.id} --cwd DIR"
        raise SpawnError(f"the working directory {task.cwd or '(none)'} does not exist ({hint})")
    if (task.isolation or config.isolation) == "worktree":
        return stack.enter(task, cwd, store.home / "worktrees")
    return stack.Entered(cwd)


def run_spec(
    config: Config,
    task: Task,
    attempt: Attempt,
    prompt: str,
    workdir: Path,
    environ: Mapping[str, str],
) -> RunSpec:
    coder = attempt.coder
    settings = config.coders.get(coder.name)
    role_name = (task.run.role if task.run else "") or task.role
    role = config.roles.get(role_name) if role_name else None
    spec = RunSpec(
        task_id=task.id,
        attempt=attempt.n,
        prompt=prompt,
        workdir=workdir,
        result_file=attempt.files.result,
        model=attempt.model,
        command=task.command,
        permission_mode=settings.permission_mode if settings else "",
    )
    if role is not None and (role.tools.allow or role.tools.deny):
        spec.options["allowed_tools"] = list(role.tools.allow)
        spec.options["denied_tools"] = list(role.tools.deny)
    if attempt.account:
        account = config.accounts[attempt.account]
        spec.config_dir = accounts.config_dir(account)
        try:
            key_as = account.key_as or coder.key_env
            spec.account_env = accounts.agent_env(account, key_as, environ)
        except KeyError as exc:
            raise KeyError(
                f"account {attempt.account}: {exc.args[0]} is not set for the supervisor"
            ) from None
    else:
        spec.account_env = own_env(coder, environ)
    return spec


def own_env(coder: Coder, environ: Mapping[str, str]) -> dict[str, str]:
    """With no account: the supervisor's own base-URL and key variables for this coder."""
    names = (coder.base_url_env, coder.key_env, coder.usage_limit_key_env)
    return {name: environ[name] for name in names if name and name in environ}


def agent_base_env() -> dict[str, str]:
    """The supervisor's environment without `GIT_*`: the agent's git sees its worktree only."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
