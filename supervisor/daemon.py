"""The supervisor loop: `tick(now)` reconciles, dispatches, then commits.

Reconcile: read the agents' new output, reap the ones that ended and classify them, stop the ones
over a limit or asked to stop, adopt the agents of a supervisor that died. Dispatch: claim ready
tasks, by priority then age, up to the global and per-coder caps. Commit: one compare-and-swap
commit for all of it; only then are the claimed agents started (and a second commit records them).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import coders
from coders.base import Outcome, RunSpec
from supervisor import config as config_mod
from supervisor import knowledge, worktree
from supervisor.attempt import Attempt, live_files, run_dir
from supervisor.config import Config
from supervisor.errors import FleetError
from supervisor.graph import ready
from supervisor.model import Task, iso, parse_time
from supervisor.outcome import Ending, apply, read_result
from supervisor.process import TOKEN_ENV, Handle, Processes, SpawnError, new_token, read_rc
from supervisor.store import Change, Snapshot, Store, task_path

Apply = Callable[[Task], bool]  # change a fresh copy of the task; False: leave it alone


@dataclass
class Op:
    """One change to one task, re-applied to the newest state if the commit has to retry."""

    task_id: str
    event: str
    apply: Apply
    files: dict[str, bytes] = field(default_factory=dict)
    ended: bool = False  # the attempt is over: its live files go once this is committed


@dataclass
class TickReport:
    claimed: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)  # (task id, outcome)
    running: int = 0
    waiting: int = 0  # ready now or after a backoff


class Supervisor:
    def __init__(
        self,
        store: Store,
        processes: Processes,
        *,
        host: str | None = None,
        pid: int | None = None,
        rng: random.Random | None = None,
        background_stops: bool = True,
    ) -> None:
        self.store = store
        self.processes = processes
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.actor = f"supervisor@{self.host}:{self.pid}"
        self.rng = rng or random.Random()
        self.background_stops = background_stops
        self.running: dict[str, Attempt] = {}
        self.stopping = ""  # "", "graceful" (claim nothing new) or "now" (stop the agents too)
        self.config = Config()
        self._config_text: str | None = None
        self._stops: dict[str, threading.Thread] = {}
        self._ended: list[Handle] = []  # attempts over whose leftovers are still to be stopped

    # -- the loop --------------------------------------------------------------------------------

    def tick(self, now: float) -> TickReport:
        report = TickReport()
        snap = self.store.snapshot()
        self._load_config()
        ops: list[Op] = []
        self._adopt(snap, now, ops)
        self._reconcile(snap, now, ops, report)
        claims = [] if self.stopping or self.config.paused else self._choose(snap, now)
        ops += [self._claim_op(task, now) for task in claims]
        won = self._commit(ops, now)
        self._cleanup_ended(ops, won)
        starts: list[Op] = []
        for task in claims:
            if task.id in won:
                report.claimed.append(task.id)
                starts.append(self._start(task.id, now, report))
        self._cleanup_ended(starts, self._commit(starts, now))
        self._clear_ended()
        report.running = len(self.running)
        report.waiting = self._waiting(now)
        return report

    def _load_config(self) -> None:
        text = self.store.cache.config_text()
        if text != self._config_text:
            with contextlib.suppress(FleetError):  # a bad one: keep the last good configuration
                self.config = config_mod.load(text)
            self._config_text = text

    def _waiting(self, now: float) -> int:
        nodes = self.store.cache.nodes()
        return len(ready(nodes, now, waiting=True))

    def next_wake(self, now: float) -> float | None:
        """When the earliest backoff ends (None: no task waits for one)."""
        times = [
            parse_time(n.not_before)
            for n in ready(self.store.cache.nodes(), now, waiting=True)
            if n.not_before
        ]
        return min(times) if times else None

    # -- reconcile -------------------------------------------------------------------------------

    def _reconcile(self, snap: Snapshot, now: float, ops: list[Op], report: TickReport) -> None:
        for task_id, attempt in list(self.running.items()):
            attempt.read_output(now)
            task = snap.get(task_id)
            if attempt.handle is None:
                continue
            code = self.processes.poll(attempt.handle)
            if code is not None:
                ops.append(self._end(attempt, code, now))
                report.ended.append((task_id, ops[-1].event))
                continue
            self._enforce(attempt, task, now)
            if now - attempt.checkpoint_at >= self.config.checkpoint_seconds:
                ops.append(self._checkpoint(attempt, now))
            self._write_status(attempt)

    def _enforce(self, attempt: Attempt, task: Task | None, now: float) -> None:
        if attempt.stop:
            return
        stop_request = (task.run or {}).get("stop") if task else None
        max_seconds = (task.max_seconds if task else None) or self.config.max_seconds
        idle_since = max(attempt.last_output_at, attempt.started_at)
        usage = attempt.usage
        if stop_request or self.stopping == "now":
            reason = "killed"
        elif now - attempt.started_at > max_seconds:
            reason = f"timed_out: ran longer than {max_seconds:g} s"
        elif now - idle_since > self.config.stall_seconds:
            reason = f"stalled: no output for {self.config.stall_seconds:g} s"
        elif task and task.max_tokens and usage.total_tokens > task.max_tokens:
            reason = (
                f"over_budget: budget: max_tokens {task.max_tokens} (used {usage.total_tokens})"
            )
        elif task and task.max_cost and (usage.cost_usd or 0) > task.max_cost:
            reason = f"over_budget: budget: max_cost {task.max_cost:g} USD"
        else:
            return
        attempt.stop = reason
        self._stop(attempt)

    def _stop(self, attempt: Attempt) -> None:
        handle = attempt.handle
        if handle is None or handle.token in self._stops:
            return
        grace = self.config.grace_seconds
        if not self.background_stops:
            self.processes.terminate(handle, grace)
            return
        self._in_background(handle.token, lambda: self.processes.terminate(handle, grace))

    def _in_background(self, key: str, work: Callable[[], None]) -> None:
        self._stops = {k: t for k, t in self._stops.items() if t.is_alive()}
        thread = threading.Thread(target=work, daemon=True)
        self._stops[key] = thread
        thread.start()

    def _clear_ended(self) -> None:
        """Stop what the ended attempts left behind (a server, a watcher): it has their token."""
        handles, self._ended = self._ended, []
        if not handles:
            return
        grace = self.config.grace_seconds

        def clear() -> None:
            for handle in handles:
                self.processes.terminate(handle, grace)

        if self.background_stops:
            self._in_background(f"ended {handles[0].token}", clear)
        else:
            clear()

    def _end(self, attempt: Attempt, code: int, now: float) -> Op:
        """The attempt's process is gone: classify it and record it."""
        attempt.flush(now)
        self.running.pop(attempt.task_id, None)
        if attempt.handle is not None:
            self._stops.pop(attempt.handle.token, None)
            self._ended.append(attempt.handle)
        ending = self._classify(attempt, code)
        record = self._record(attempt, ending, code, now)
        files = _artifacts(attempt, record)
        config = self.config

        def change(task: Task) -> bool:
            if (task.run or {}).get("attempt") != attempt.n:
                return False
            limit = task.max_attempts or config.max_attempts
            apply(
                task,
                ending,
                record,
                now,
                limit,
                config.backoff_seconds,
                config.backoff_max_seconds,
                self.rng,
            )
            return True

        return Op(attempt.task_id, ending.outcome.value, change, files, ended=True)

    def _classify(self, attempt: Attempt, code: int) -> Ending:
        verdict = attempt.parser.finish(code)
        if attempt.stop:
            kind, _, reason = attempt.stop.partition(": ")
            if kind == "killed":
                task = self.store.cache.get(attempt.task_id)
                stop = (task.run or {}).get("stop") if task else None
                block = str(stop.get("block") or "") if isinstance(stop, dict) else ""
                why = (
                    f"killed by {stop.get('by', '?')}"
                    if isinstance(stop, dict)
                    else "stopped with the supervisor"
                )
                return Ending(Outcome.KILLED, why, block_reason=block)
            outcome = Outcome(kind)
            return Ending(
                outcome, reason, block_reason=reason if outcome == Outcome.OVER_BUDGET else ""
            )
        result, problem = read_result(attempt.files.result)
        if verdict.outcome != Outcome.SUCCESS:
            return Ending(verdict.outcome, verdict.reason, result, verdict.resets_at)
        if result is None and attempt.coder.needs_result:
            return Ending(Outcome.FAILURE, problem)
        if result is None and attempt.files.result.exists():
            return Ending(Outcome.FAILURE, problem)
        if result is not None and result.status == "partial":
            return Ending(Outcome.SUCCESS, f"the agent did part of it: {result.summary}", result)
        return Ending(Outcome.SUCCESS, "", result)

    def _record(self, attempt: Attempt, ending: Ending, code: int, now: float) -> dict[str, object]:
        usage = attempt.usage
        result = ending.result
        return {
            "n": attempt.n,
            "outcome": ending.outcome.value,
            "reason": ending.reason,
            "exit_code": code,
            "started_at": iso(attempt.started_at),
            "ended_at": iso(now),
            "seconds": round(now - attempt.started_at, 3),
            "coder": attempt.coder.name,
            "model": attempt.model or usage.model,
            "account": attempt.account,
            "actor": self.actor,
            "workdir": attempt.workdir,
            "session_id": attempt.parser.session_id,
            "usage": usage.to_dict(),
            "result_status": result.status if result else "",
            "summary": result.summary if result else "",
            "open_questions": result.open_questions if result else [],
            "resets_at": iso(ending.resets_at) if ending.resets_at else "",
            "lines": attempt.lines,
        }

    def _checkpoint(self, attempt: Attempt, now: float) -> Op:
        attempt.checkpoint_at = now
        files = {
            f"{run_dir(attempt.task_id, attempt.n)}/output.log": _read(attempt.files.stdout),
            f"{run_dir(attempt.task_id, attempt.n)}/log.txt": _read(attempt.files.log),
        }
        live = attempt.summary()

        def change(task: Task) -> bool:
            if (task.run or {}).get("attempt") != attempt.n:
                return False
            task.run = {**(task.run or {}), **live}
            return True

        return Op(attempt.task_id, "checkpoint", change, files)

    def _write_status(self, attempt: Attempt) -> None:
        status = attempt.files.root / "status.json"
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(attempt.summary()))
        tmp.replace(status)

    # -- adoption --------------------------------------------------------------------------------

    def _adopt(self, snap: Snapshot, now: float, ops: list[Op]) -> None:
        """Take over the attempts of a dead supervisor of this host and this home."""
        for body in self.store.cache.select(["in_progress"]):
            task = Task.from_dict(body)
            run = task.run
            if task.id in self.running or not run or run.get("actor") == self.actor:
                continue
            if run.get("host") != self.host:
                continue  # another machine's supervisor owns it
            n = int(run.get("attempt", 0))
            files = live_files(self.store.home, task.id, n)
            handle_data = run.get("handle") or _load_json(files.handle)
            try:
                coder = coders.get(str(run.get("coder") or self.config.coder))
            except KeyError:
                coder = coders.get("shell")
            attempt = Attempt(
                task_id=task.id,
                n=n,
                coder=coder,
                parser=coder.parser(),
                files=files,
                started_at=parse_time(str(run.get("started_at") or iso(now))),
                model=str(run.get("model") or ""),
                account=str(run.get("account") or ""),
                workdir=str(run.get("workdir") or ""),
                handle=Handle.from_dict(handle_data) if handle_data else None,
                checkpoint_at=now,
            )
            files.log.unlink(missing_ok=True)  # re-rendered from the raw output
            if attempt.handle is None:
                ops.append(self._unrecorded(attempt, str(run.get("token") or ""), now))
                continue
            attempt.read_output(now)
            attempt.last_output_at = max(attempt.last_output_at, now)
            self.running[task.id] = attempt
            ops.append(self._adopted_op(attempt))

    def _adopted_op(self, attempt: Attempt) -> Op:
        actor = self.actor

        def change(task: Task) -> bool:
            if (task.run or {}).get("attempt") != attempt.n:
                return False
            task.run = {**(task.run or {}), "actor": actor, "supervisor_pid": self.pid}
            task.assignee = actor
            return True

        return Op(attempt.task_id, "adopted", change)

    def _unrecorded(self, attempt: Attempt, token: str, now: float) -> Op:
        """An attempt whose agent's handle was never recorded: its supervisor died at the spawn.

        The agent may not exist, may still run (it is stopped: it cannot be watched without its
        handle), or may have ended already (its wrapper wrote the exit code: it is recorded).
        """
        stopped = self.processes.sweep(token) if token else 0
        code = read_rc(attempt.files.rc)
        if code is not None:
            return self._end(attempt, code, now)
        why = "the supervisor died before the agent started"
        if stopped:
            why = "the supervisor died as the agent started; the agent was stopped"
        return self._requeue(attempt.task_id, attempt.n, why, now)

    def _requeue(self, task_id: str, n: int, why: str, now: float) -> Op:
        ending = Ending(Outcome.KILLED, why)
        record: dict[str, object] = {
            "n": n,
            "outcome": "killed",
            "reason": why,
            "actor": self.actor,
        }
        config = self.config

        def change(fresh: Task) -> bool:
            if (fresh.run or {}).get("attempt") != n:
                return False
            apply(fresh, ending, record, now, config.max_attempts, 0, 0, self.rng)
            return True

        return Op(task_id, "requeued", change, ended=True)

    # -- dispatch --------------------------------------------------------------------------------

    def _choose(self, snap: Snapshot, now: float) -> list[Task]:
        free = self.config.max_concurrent - len(self.running)
        if free <= 0:
            return []
        per_coder: dict[str, int] = {}
        for attempt in self.running.values():
            per_coder[attempt.coder.name] = per_coder.get(attempt.coder.name, 0) + 1
        chosen: list[Task] = []
        for node in ready(self.store.cache.nodes(), now, waiting=False):
            task = snap.get(node.id)
            if task is None or task.run is not None:
                continue
            coder = task.coder or self.config.coder
            settings = self.config.coders.get(coder)
            cap = settings.max_concurrent if settings and settings.max_concurrent else None
            if cap is not None and per_coder.get(coder, 0) >= cap:
                continue
            per_coder[coder] = per_coder.get(coder, 0) + 1
            chosen.append(task)
            if len(chosen) >= free:
                break
        return chosen

    def _claim_op(self, task: Task, now: float) -> Op:
        n = len(task.attempts) + 1
        coder = task.coder or self.config.coder
        settings = self.config.coders.get(coder)
        model = task.model or (settings.model if settings else "")
        run = {
            "attempt": n,
            "actor": self.actor,
            "host": self.host,
            "supervisor_pid": self.pid,
            "coder": coder,
            "model": model,
            "claimed_at": iso(now),
            "started_at": iso(now),
            "token": new_token(),  # known before the agent starts, so it can always be found
        }

        def change(fresh: Task) -> bool:
            if fresh.status != "open" or fresh.run is not None:
                return False  # someone else has it, or it changed: not ours
            fresh.status, fresh.assignee, fresh.run = "in_progress", self.actor, dict(run)
            fresh.status_reason, fresh.updated_at = "", iso(now)
            return True

        return Op(task.id, "claimed", change)

    def _start(self, task_id: str, now: float, report: TickReport) -> Op:
        """Start the agent of a task this supervisor just claimed."""
        task = self.store.cache.get(task_id)
        assert task is not None and task.run is not None
        n = int(task.run["attempt"])
        files = live_files(self.store.home, task_id, n)
        shutil.rmtree(files.root, ignore_errors=True)
        files.root.mkdir(parents=True)
        coder_name = str(task.run["coder"])
        try:
            coder = coders.get(coder_name)
        except KeyError:
            known = ", ".join(coders.names())
            return self._setup_failed(
                task, n, f"unknown coder {coder_name!r} (known: {known})", now
            )
        attempt = Attempt(
            task_id,
            n,
            coder,
            coder.parser(),
            files,
            now,
            model=str(task.run.get("model") or ""),
            checkpoint_at=now,
        )
        try:
            handle = self._spawn(task, attempt)
        except (SpawnError, worktree.WorktreeError, ValueError, OSError) as exc:
            return self._setup_failed(task, n, str(getattr(exc, "reason", None) or exc), now)
        attempt.handle = handle
        self.running[task_id] = attempt
        report.started.append(task_id)
        live = attempt.summary()

        def change(fresh: Task) -> bool:
            if (fresh.run or {}).get("attempt") != n:
                return False
            fresh.run = {**(fresh.run or {}), **live, "token": handle.token}
            return True

        return Op(task_id, "started", change)

    def _spawn(self, task: Task, attempt: Attempt) -> Handle:
        cwd = Path(task.cwd) if task.cwd else None
        if cwd is None or not cwd.is_dir():
            hint = f"fleet bd update {task.id} --cwd DIR"
            raise SpawnError(
                f"the working directory {task.cwd or '(none)'} does not exist ({hint})"
            )
        workdir = cwd
        if self.config.isolation == "worktree":
            workdir = worktree.prepare(cwd, task.id, self.store.home / "worktrees")
        attempt.workdir = str(workdir)
        files = attempt.files
        prompt = knowledge.build(task, workdir, files.result, self.store.cache.get)
        files.knowledge.write_text(prompt, encoding="utf-8")
        settings = self.config.coders.get(attempt.coder.name)
        spec = RunSpec(
            task_id=task.id,
            attempt=attempt.n,
            prompt=prompt,
            workdir=workdir,
            result_file=files.result,
            model=attempt.model,
            command=task.command,
            permission_mode=settings.permission_mode if settings else "",
        )
        command = attempt.coder.command(spec)
        for path, text in command.files.items():
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        env = {
            **_agent_env(),
            "FLEET_HOME": str(self.store.home),
            "FLEET_TASK_ID": task.id,
            "FLEET_ATTEMPT": str(attempt.n),
            "FLEET_RESULT_FILE": str(files.result),
            **command.env,
            TOKEN_ENV: str((task.run or {}).get("token") or new_token()),
        }
        for name in command.unset_env:
            env.pop(name, None)
        handle = self.processes.spawn(
            command.argv, workdir, env, files.stdout, files.stderr, files.rc
        )
        files.handle.write_text(json.dumps(handle.to_dict()))
        return handle

    def _setup_failed(self, task: Task, n: int, reason: str, now: float) -> Op:
        attempt_record: dict[str, object] = {
            "n": n,
            "outcome": Outcome.SETUP_ERROR.value,
            "reason": reason,
            "actor": self.actor,
            "started_at": iso(now),
            "ended_at": iso(now),
        }
        ending = Ending(Outcome.SETUP_ERROR, reason)
        config = self.config

        def change(fresh: Task) -> bool:
            if (fresh.run or {}).get("attempt") != n:
                return False
            apply(fresh, ending, dict(attempt_record), now, config.max_attempts, 0, 0, self.rng)
            return True

        return Op(task.id, "setup_error", change, ended=True)

    # -- commit ----------------------------------------------------------------------------------

    def _commit(self, ops: list[Op], now: float) -> set[str]:
        """Publish ops in one commit; return the ids of the tasks whose op applied."""
        if not ops:
            return set()

        def build(snap: Snapshot) -> tuple[Change | None, set[str]]:
            change = Change("", "")
            applied: set[str] = set()
            events: dict[str, list[str]] = {}
            for op in ops:
                task = snap.get(op.task_id)
                if task is None or not op.apply(task):
                    continue
                change.put(task)
                change.files.update(op.files)
                applied.add(op.task_id)
                events.setdefault(op.event, []).append(op.task_id)
            if not applied:
                return None, applied
            change.summary = "supervisor: " + "; ".join(
                f"{e} {' '.join(ids)}" for e, ids in events.items()
            )
            change.event = ",".join(events)
            return change, applied

        return self.store.mutate(build, self.actor)

    def _cleanup_ended(self, ops: list[Op], won: set[str]) -> None:
        for op in ops:
            if op.ended and op.task_id in won:
                shutil.rmtree(self.store.home / "live" / op.task_id, ignore_errors=True)

    # -- stopping --------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every running agent (the supervisor is going away with --now)."""
        self.stopping = "now"
        for attempt in self.running.values():
            if not attempt.stop:
                attempt.stop = "killed"
                self._stop(attempt)

    def wait_stops(self, timeout: float) -> None:
        for thread in list(self._stops.values()):
            thread.join(timeout)


def _artifacts(attempt: Attempt, record: dict[str, object]) -> dict[str, bytes]:
    base = run_dir(attempt.task_id, attempt.n)
    files = {
        f"{base}/output.log": _read(attempt.files.stdout),
        f"{base}/stderr.log": _read(attempt.files.stderr),
        f"{base}/log.txt": _read(attempt.files.log),
        f"{base}/knowledge.md": _read(attempt.files.knowledge),
        f"{base}/attempt.json": (json.dumps(record, indent=2) + "\n").encode(),
    }
    if attempt.parser.plan:
        files[f"{base}/plan.md"] = (attempt.parser.plan.rstrip() + "\n").encode()
    if attempt.files.result.exists():
        files[f"{base}/result.json"] = _read(attempt.files.result)
    return files


def _agent_env() -> dict[str, str]:
    """The supervisor's environment without `GIT_*`: the agent's git sees its worktree only."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _load_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["Op", "Supervisor", "TickReport", "task_path"]
