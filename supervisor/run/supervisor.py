"""The supervisor loop: `tick(now)` reconciles, dispatches, then commits.

Reconcile: adopt the agents of a supervisor that died, read the agents' new output, reap the ones
that ended and classify them, stop the ones over a limit or asked to stop. Dispatch: claim ready
tasks (see `dispatch`) in one compare-and-swap commit; only then are the claimed agents started,
several at once (`launch`). A second commit records the started agents and all that reconcile
found: an ended attempt's record, the heaviest write, does not delay the start of the agent that
takes its place. Until it is committed, the ended attempt's live files stay, so a supervisor that
dies in between leaves it for the next one to record.
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
from pathlib import Path

import coders
from coders.base import Outcome, Usage
from supervisor import accounts, budgets
from supervisor import config as config_mod
from supervisor.config import Config
from supervisor.errors import FleetError
from supervisor.model import Task, iso, parse_time
from supervisor.run import delivery, merges, resume
from supervisor.run.attempt import Attempt, live_files, run_dir
from supervisor.run.dispatch import Fleet, Pick, choose, claim_op
from supervisor.run.launch import LaunchError, Prepared, prepare, start_all
from supervisor.run.ops import Op, TickReport, commit
from supervisor.run.outcome import Ending, apply, read_result
from supervisor.run.process import Handle, Processes, read_rc
from supervisor.store.store import Snapshot, Store

__all__ = ["Op", "Supervisor", "TickReport"]

STATUS_EVERY = 1.0  # seconds between two writes of a running attempt's status file
ADOPT_EVERY = 10.0  # seconds between two looks for attempts a dead supervisor left
CLEAR_EVERY = 0.5  # seconds between two looks for what ended attempts left behind, when busy


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
        self.states: dict[str, accounts.State] = {}  # account name -> what we know of it
        self.waiting: dict[str, str] = {}  # ready task id -> why it was not started
        self._waiting_written: dict[str, str] | None = None
        self._config_text: str | None = None
        self._states_commit: str | None = None
        self._stops: dict[str, threading.Thread] = {}
        self._ended: list[Handle] = []  # attempts over whose leftovers are still to be stopped
        self._spent: list[tuple[str, Usage, float | None]] = []  # attempts ended in this tick
        self._adopt_at = 0.0  # when to look for orphaned attempts next
        self._clear_at = 0.0  # when to look for what ended attempts left behind next
        self._tasks: tuple[str | None, dict[str, Task | None]] = (None, {})  # parsed, by commit
        self.merges = merges.Queue(store, self.actor, background_stops)

    # -- the loop --------------------------------------------------------------------------------

    def tick(self, now: float) -> TickReport:
        report = TickReport()
        self._spent = []
        snap = self.store.snapshot()
        self._load(snap)
        ops: list[Op] = []
        if now >= self._adopt_at:  # at the first tick, then now and then: orphans are rare
            self._adopt(now, ops)
            self._adopt_at = now + ADOPT_EVERY
        self._reconcile(snap, now, ops, report)
        picks = [] if self.stopping or self.config.paused else self._choose(snap, now)
        claims = [claim_op(p, self.actor, self.host, self.pid, now) for p in picks]
        won = commit(self.store, self.actor, claims)
        report.claimed = [p.task.id for p in picks if p.task.id in won]
        ops += self._start(report.claimed, now, report)
        ops += self.merges.step(snap.commit, self.config, now)
        self._cleanup_ended(ops, commit(self.store, self.actor, ops))
        self._clear_ended(now)
        self._write_waiting()
        report.running = len(self.running)
        report.waiting = len(self.store.cache.ready(now, waiting=True))
        report.merging = self.merges.pending([task_id for task_id, _ in report.ended])
        return report

    def _load(self, snap: Snapshot) -> None:
        """The configuration and the accounts' state, read again when they changed."""
        text = self.store.cache.config_text()
        if text != self._config_text:
            with contextlib.suppress(FleetError):  # a bad one: keep the last good configuration
                self.config = config_mod.load(text)
            self._config_text = text
        if snap.commit != self._states_commit and self.config.accounts:
            names = sorted(self.config.accounts)
            blobs = self.store.git.cat_batch(
                [f"{snap.commit}:{accounts.state_path(n)}" for n in names]
            )
            self.states = {
                n: accounts.State.from_bytes(data)
                for n, (_, data) in zip(names, blobs, strict=True)
            }
            self._states_commit = snap.commit

    def next_wake(self, now: float) -> float | None:
        """When the earliest backoff ends (None: no task waits for one)."""
        return self.store.cache.next_wake(now)

    # -- reconcile -------------------------------------------------------------------------------

    def _reconcile(self, snap: Snapshot, now: float, ops: list[Op], report: TickReport) -> None:
        for task_id, attempt in list(self.running.items()):
            attempt.read_output(now)
            self._note_limit(attempt, now, ops)
            if attempt.handle is None:
                continue
            code = self.processes.poll(attempt.handle)
            if code is not None:
                ops.append(self._end(attempt, code, now, ops))
                report.ended.append((task_id, ops[-1].event))
                continue
            self._enforce(attempt, self._task(snap, task_id), now, ops)
            if now - attempt.checkpoint_at >= self.config.checkpoint_seconds:
                ops.append(self._checkpoint(attempt, now))
            if attempt.lines != attempt.status_lines and now - attempt.status_at >= STATUS_EVERY:
                self._write_status(attempt, now)  # news, and the file is a second old

    def _task(self, snap: Snapshot, task_id: str) -> Task | None:
        """The task as of the snapshot, parsed once per commit (ticks mostly see no change)."""
        commit, parsed = self._tasks
        if commit != snap.commit:
            parsed = {}
            self._tasks = (snap.commit, parsed)
        if task_id not in parsed:
            parsed[task_id] = snap.get(task_id)
        return parsed[task_id]

    def _enforce(self, attempt: Attempt, task: Task | None, now: float, ops: list[Op]) -> None:
        if attempt.stop:
            return
        stop_request = (task.run or {}).get("stop") if task else None
        idle_since = max(attempt.last_output_at, attempt.started_at)
        limits = self._limits(attempt, task)
        if stop_request or self.stopping == "now":
            reason = "killed"
        elif not limits.max_seconds and now - attempt.started_at > self.config.max_seconds:
            reason = f"timed_out: ran longer than {self.config.max_seconds:g} s"
        elif now - idle_since > self.config.stall_seconds:
            reason = f"stalled: no output for {self.config.stall_seconds:g} s"
        else:
            reason = self._budget(attempt, task, limits, now, ops) if task else ""
        if reason:
            attempt.stop = reason
            self._stop(attempt)

    def _limits(self, attempt: Attempt, task: Task | None) -> budgets.Limits:
        if task is None:
            return budgets.Limits()
        role = self.config.roles.get(task.role) if task.role else None
        return budgets.limits_for(task, role, self.config.coders.get(attempt.coder.name))

    def _budget(
        self, attempt: Attempt, task: Task, limits: budgets.Limits, now: float, ops: list[Op]
    ) -> str:
        """`over_budget: budget: <limit> ...` past a hard limit; a warning op past the soft one.

        A budget covers the task's attempts since its last `fleet retry`, this one included.
        """
        seconds, usage, cost = budgets.so_far(task, self.config.prices)
        usage = budgets.plus(usage, attempt.usage)
        cost += budgets.cost(attempt.usage, self.config.prices) or 0.0
        seconds += now - attempt.started_at
        for name, limit, used in budgets.spent(limits, seconds, usage, cost):
            if used > limit:
                return f"over_budget: budget: {name} {limit:g} (used {used:.4g})"
            if used >= self.config.budget_warning * limit and name not in attempt.warned:
                attempt.warned.add(name)
                ops.append(self._warning(attempt, name, used / limit))
        return ""

    def _warning(self, attempt: Attempt, name: str, used: float) -> Op:
        text = f"{used:.0%} of its {name} budget used (attempt {attempt.n})"

        def change(task: Task) -> bool:
            if (task.run or {}).get("attempt") != attempt.n:
                return False
            task.run = {**(task.run or {}), "budget_warning": text}
            return True

        return Op(attempt.task_id, "budget_warning", change)

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

    def _clear_ended(self, now: float) -> None:
        """Stop what the ended attempts left behind (a server, a watcher): it has their token.

        One look at the process table serves every attempt that ended since the last look, and
        while stops run in the background there is at most one look every CLEAR_EVERY seconds.
        """
        if not self._ended or (self.background_stops and now < self._clear_at):
            return
        self._clear_at = now + CLEAR_EVERY
        self._clear_now()

    def _clear_now(self) -> None:
        handles, self._ended = self._ended, []
        if not handles:
            return
        grace = self.config.grace_seconds

        def clear() -> None:
            self.processes.terminate_all(handles, grace)

        if self.background_stops:
            self._in_background(f"ended {handles[0].token}", clear)
        else:
            clear()

    # -- accounts --------------------------------------------------------------------------------

    def _note_limit(self, attempt: Attempt, now: float, ops: list[Op]) -> None:
        """An early warning crossing `limit_threshold` (or falling back) is recorded at once."""
        limit, name = attempt.limit, attempt.account
        if limit is None or limit.utilization is None or name not in self.config.accounts:
            return
        attempt.limit = None
        state = self.states.get(name) or accounts.State()
        threshold = self.config.limit_threshold
        was = accounts.near_limit(state, threshold, now)
        new = accounts.note_utilization(state, limit.utilization, limit.resets_at, now)
        if accounts.near_limit(new, threshold, now) != was or not state.utilization_at:
            ops.append(self._account_op(name, new, "account_warning"))

    def _account_op(self, name: str, state: accounts.State, event: str) -> Op:
        self.states[name] = state
        return Op("", f"{event} {name}", files={accounts.state_path(name): state.to_bytes()})

    def _account_after(self, attempt: Attempt, ending: Ending, now: float, ops: list[Op]) -> None:
        name = attempt.account
        if name not in self.config.accounts:
            return
        state = self.states.get(name) or accounts.State()
        if ending.outcome == Outcome.RATE_LIMITED:
            why = ending.reason or "rate limited"
            ops.append(
                self._account_op(
                    name,
                    accounts.mark_limited(state, now, ending.resets_at, why),
                    "account_limited",
                )
            )
        elif ending.outcome == Outcome.SUCCESS and state.limits_in_a_row:
            ops.append(self._account_op(name, accounts.mark_ok(state), "account_ok"))

    def _other_account(self, attempt: Attempt, task: Task) -> bool:
        """Another account could take this task now that its account hit a limit."""
        if task.account:
            return False
        return any(
            n != attempt.account and a.coder == attempt.coder.name and not a.disabled
            for n, a in self.config.accounts.items()
        )

    # -- ending ----------------------------------------------------------------------------------

    def _end(self, attempt: Attempt, code: int, now: float, ops: list[Op]) -> Op:
        """The attempt's process is gone: classify it and record it."""
        attempt.flush(now)
        if attempt.spec is not None:
            side = attempt.coder.side_events(attempt.spec, attempt.parser.session_id)
            limits = [e.limit for e in side if e.limit and e.limit.utilization is not None]
            attempt.limit = max(
                limits, key=lambda lim: lim.utilization or 0.0, default=attempt.limit
            )
            self._note_limit(attempt, now, ops)
        self.running.pop(attempt.task_id, None)
        if attempt.handle is not None:
            self._stops.pop(attempt.handle.token, None)
            self._ended.append(attempt.handle)
        ending = self._classify(attempt, code)
        record = self._record(attempt, ending, code, now)
        delivered = delivery.on_end(self.store, attempt, ending, record)  # its work, its diff
        self._account_after(attempt, ending, now, ops)
        cost = budgets.cost(attempt.usage, self.config.prices)
        self._spent.append((attempt.account, attempt.usage, cost))
        files = _artifacts(attempt, record) | delivered
        config = self.config

        def change(task: Task) -> bool:
            if (task.run or {}).get("attempt") != attempt.n:
                return False
            limit = task.max_attempts or config.max_attempts
            if resume.settle(task, record, now):
                return True
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
            merges.on_close(task, config, now)
            if ending.outcome == Outcome.RATE_LIMITED and self._other_account(attempt, task):
                task.not_before = ""
                task.status_reason = (
                    f"rate_limited on account {attempt.account}: {ending.reason};"
                    " moves to another account"
                )
            return True

        return Op(attempt.task_id, ending.outcome.value, change, files, ended=True)

    def _classify(self, attempt: Attempt, code: int) -> Ending:
        verdict = attempt.parser.finish(code)
        if attempt.stop:
            kind, _, reason = attempt.stop.partition(": ")
            if kind == "killed":
                return self._killed(attempt)
            outcome = Outcome(kind)
            return Ending(
                outcome, reason, block_reason=reason if outcome == Outcome.OVER_BUDGET else ""
            )
        result, problem = read_result(attempt.files.result)
        if verdict.outcome != Outcome.SUCCESS:
            return Ending(verdict.outcome, verdict.reason, result, verdict.resets_at)
        if result is None and (attempt.coder.needs_result or attempt.files.result.exists()):
            return Ending(Outcome.FAILURE, problem)
        if result is not None and result.status == "partial":
            return Ending(Outcome.SUCCESS, f"the agent did part of it: {result.summary}", result)
        return Ending(Outcome.SUCCESS, "", result)

    def _killed(self, attempt: Attempt) -> Ending:
        task = self.store.cache.get(attempt.task_id)
        stop = (task.run or {}).get("stop") if task else None
        if not isinstance(stop, dict):
            return Ending(Outcome.KILLED, "stopped with the supervisor")
        return Ending(
            Outcome.KILLED,
            f"killed by {stop.get('by', '?')}",
            block_reason=str(stop.get("block") or ""),
        )

    def _record(self, attempt: Attempt, ending: Ending, code: int, now: float) -> dict[str, object]:
        usage = attempt.usage
        result = ending.result
        priced = budgets.cost(usage, self.config.prices)
        return {
            "n": attempt.n,
            "outcome": ending.outcome.value,
            "reason": ending.reason,
            "exit_code": code,
            "started_at": iso(attempt.started_at),
            "ended_at": iso(now),
            "seconds": round(now - attempt.started_at, 3),
            "coder": attempt.coder.name,
            "model": attempt.model or usage.model or attempt.coder.default_model,
            "account": attempt.account,
            "actor": self.actor,
            "workdir": attempt.workdir,
            "session_id": attempt.parser.session_id,
            "usage": {**usage.to_dict(), "cost_usd": priced},
            "cost_source": "cli"
            if usage.cost_usd is not None
            else "prices"
            if priced is not None
            else "",
            "result_status": result.status if result else "",
            "summary": result.summary if result else "",
            "open_questions": result.open_questions if result else [],
            "resets_at": iso(ending.resets_at) if ending.resets_at else "",
            "lines": attempt.lines,
        }

    def _checkpoint(self, attempt: Attempt, now: float) -> Op:
        attempt.checkpoint_at = now
        base = run_dir(attempt.task_id, attempt.n)
        files = {
            f"{base}/output.log": _read(attempt.files.stdout),
            f"{base}/log.txt": _read(attempt.files.log),
        }
        live = attempt.summary()

        def change(task: Task) -> bool:
            if (task.run or {}).get("attempt") != attempt.n:
                return False
            task.run = {**(task.run or {}), **live}
            return True

        return Op(attempt.task_id, "checkpoint", change, files)

    def _write_status(self, attempt: Attempt, now: float) -> None:
        attempt.status_lines, attempt.status_at = attempt.lines, now
        summary = attempt.summary()
        summary["usage"]["cost_usd"] = budgets.cost(attempt.usage, self.config.prices)
        _write_json(attempt.files.root / "status.json", summary)

    def _write_waiting(self) -> None:
        if self.waiting != self._waiting_written:
            _write_json(self.store.home / "live" / "waiting.json", self.waiting)
            self._waiting_written = dict(self.waiting)

    # -- adoption --------------------------------------------------------------------------------

    def _adopt(self, now: float, ops: list[Op]) -> None:
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
                task.id,
                n,
                coder,
                coder.parser(),
                files,
                parse_time(str(run.get("started_at") or iso(now))),
                checkpoint_at=now,
            )
            attempt.model = str(run.get("model") or "")
            attempt.account = str(run.get("account") or "")
            attempt.workdir = str(run.get("workdir") or "")
            attempt.handle = Handle.from_dict(handle_data) if handle_data else None
            files.log.unlink(missing_ok=True)  # re-rendered from the raw output
            if attempt.handle is None:
                ops.append(self._unrecorded(attempt, str(run.get("token") or ""), now, ops))
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

    def _unrecorded(self, attempt: Attempt, token: str, now: float, ops: list[Op]) -> Op:
        """An attempt whose agent's handle was never recorded: its supervisor died at the spawn.

        The agent may not exist, may still run (it is stopped: it cannot be watched without its
        handle), or may have ended already (its wrapper wrote the exit code: it is recorded).
        """
        stopped = self.processes.sweep(token) if token else 0
        code = read_rc(attempt.files.rc)
        if code is not None:
            return self._end(attempt, code, now, ops)
        why = "the supervisor died before the agent started"
        if stopped:
            why = "the supervisor died as the agent started; the agent was stopped"
        return self._abandon(attempt.task_id, attempt.n, Outcome.KILLED, why, now)

    def _abandon(self, task_id: str, n: int, outcome: Outcome, why: str, now: float) -> Op:
        """End attempt n without a process to classify: requeued (killed) or blocked (setup)."""
        ending = Ending(outcome, why)
        record: dict[str, object] = {
            "n": n,
            "outcome": outcome.value,
            "reason": why,
            "actor": self.actor,
            "started_at": iso(now),
            "ended_at": iso(now),
        }
        config = self.config

        def change(fresh: Task) -> bool:
            if (fresh.run or {}).get("attempt") != n:
                return False
            apply(fresh, ending, dict(record), now, config.max_attempts, 0, 0, self.rng)
            return True

        event = "requeued" if outcome == Outcome.KILLED else outcome.value
        return Op(task_id, event, change, ended=True)

    # -- dispatch --------------------------------------------------------------------------------

    def _choose(self, snap: Snapshot, now: float) -> list[Pick]:
        day = None
        if (
            self.config.daily_max_cost
            or self.config.daily_max_tokens
            or any(a.daily_max_cost or a.daily_max_tokens for a in self.config.accounts.values())
        ):
            day = self._today(now)
        fleet = Fleet(self.config, self.running, self.states, day, os.environ, now)
        picks, self.waiting = choose(snap, self.store.cache.ready(now, waiting=False), fleet)
        return picks

    def _today(self, now: float) -> budgets.Day:
        start = budgets.day_start(now)
        tasks = [Task.from_dict(b) for b in self.store.cache.updated_since(start)]
        prices = self.config.prices
        live = [(a.account, a.usage, budgets.cost(a.usage, prices)) for a in self.running.values()]
        return budgets.today(tasks, live + self._spent, now)

    def _start(self, task_ids: list[str], now: float, report: TickReport) -> list[Op]:
        """Start the agents of the tasks this supervisor just claimed; an op for each."""
        claimed = [self._claimed(task_id) for task_id in task_ids]
        started = start_all(self.processes, [self._prepare(task, now) for task in claimed])
        return [self._started(t, r, now, report) for t, r in zip(claimed, started, strict=True)]

    def _claimed(self, task_id: str) -> Task:
        task = self.store.cache.get(task_id)
        assert task is not None and task.run is not None
        return task

    def _prepare(self, task: Task, now: float) -> Prepared | LaunchError:
        try:
            return prepare(self.store, self.config, task, now)
        except LaunchError as exc:
            return exc

    def _started(
        self, task: Task, result: Attempt | LaunchError, now: float, report: TickReport
    ) -> Op:
        n = int((task.run or {})["attempt"])
        if isinstance(result, LaunchError):
            return self._abandon(task.id, n, Outcome.SETUP_ERROR, str(result), now)
        assert result.handle is not None
        self.running[task.id] = result
        report.started.append(task.id)
        live = {**result.summary(), "token": result.handle.token}

        def change(fresh: Task) -> bool:
            if (fresh.run or {}).get("attempt") != n:
                return False
            fresh.run = {**(fresh.run or {}), **live}
            return True

        return Op(task.id, "started", change)

    # -- committing and stopping -----------------------------------------------------------------

    def _cleanup_ended(self, ops: list[Op], won: set[str]) -> None:
        """Remove the live files of ended attempts once their record is committed."""
        gone = [
            self.store.home / "live" / op.task_id for op in ops if op.ended and op.task_id in won
        ]
        if not gone:
            return

        def remove() -> None:
            for path in gone:
                shutil.rmtree(path, ignore_errors=True)

        if self.background_stops:
            self._in_background(f"live {gone[0].name}", remove)
        else:
            remove()

    def stop_all(self) -> None:
        """Stop every running agent (the supervisor is going away with --now)."""
        self.stopping = "now"
        for attempt in self.running.values():
            if not attempt.stop:
                attempt.stop = "killed"
                self._stop(attempt)

    def wait_stops(self, timeout: float) -> None:
        """Finish the stops under way, and the look for what ended attempts left behind."""
        self._clear_now()
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _load_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
