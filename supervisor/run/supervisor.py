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
import os
import random
import socket

from coders.base import Outcome, Usage
from supervisor import accounts, budgets
from supervisor import config as config_mod
from supervisor.config import Config
from supervisor.errors import FleetError
from supervisor.lifecycle import Ending, Policy
from supervisor.model import Task
from supervisor.run import adopt, ending
from supervisor.run.attempt import Attempt, live_dir, waiting_path
from supervisor.run.dispatch import Fleet, Pick, choose, claim_op
from supervisor.run.launch import LaunchError, Prepared, prepare, start_all
from supervisor.run.ops import Op, TickReport, commit
from supervisor.run.process import Processes, read_rc
from supervisor.run.stops import Stops
from supervisor.store.store import Snapshot, Store

__all__ = ["Op", "Supervisor", "TickReport"]

STATUS_EVERY = 1.0  # seconds between two writes of a running attempt's status file
ADOPT_EVERY = 10.0  # seconds between two looks for attempts a dead supervisor left


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
        self.stops = Stops(processes, background_stops)
        self.running: dict[str, Attempt] = {}
        self.stopping = ""  # "", "graceful" (claim nothing new) or "now" (stop the agents too)
        self.config = Config()
        self.states: dict[str, accounts.State] = {}  # account name -> what we know of it
        self.waiting: dict[str, str] = {}  # ready task id -> why it was not started
        self._waiting_written: dict[str, str] | None = None
        self._config_text: str | None = None
        self._states_commit: str | None = None
        self._spent: list[tuple[str, Usage, float | None]] = []  # attempts ended in this tick
        self._adopt_at = 0.0  # when to look for orphaned attempts next
        self._tasks: tuple[str | None, dict[str, Task | None]] = (None, {})  # parsed, by commit

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
        won = commit(self.store, self.actor, ops)
        home = self.store.home
        self.stops.remove(
            [live_dir(home, op.task_id) for op in ops if op.ended and op.task_id in won]
        )
        self.stops.clear(now, self.config.grace_seconds)
        self._write_waiting()
        report.running = len(self.running)
        report.waiting = len(self.store.cache.ready(now, waiting=True))
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

    @property
    def policy(self) -> Policy:
        c = self.config
        return Policy(c.max_attempts, c.backoff_seconds, c.backoff_max_seconds, self.rng)

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
                ops.append(ending.checkpoint_op(attempt, now))
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
        """Stop the attempt when asked to, or past a limit (time, silence, its task's budget)."""
        if attempt.stop:
            return
        config = self.config
        limits = budgets.task_limits(config, task, attempt.coder.name)
        idle_since = max(attempt.last_output_at, attempt.started_at)
        reason = ""
        if (task is not None and task.run is not None and task.run.stop) or self.stopping == "now":
            reason = "killed"
        elif not limits.max_seconds and now - attempt.started_at > config.max_seconds:
            reason = f"timed_out: ran longer than {config.max_seconds:g} s"
        elif now - idle_since > config.stall_seconds:
            reason = f"stalled: no output for {config.stall_seconds:g} s"
        elif task is not None:
            running = (now - attempt.started_at, attempt.usage)
            reason, warnings = budgets.check(
                task, limits, running, config.prices, config.budget_warning, attempt.warned
            )
            ops += [ending.warning_op(attempt, name, used) for name, used in warnings]
        if reason:
            attempt.stop = reason
            self.stops.stop(attempt.handle, config.grace_seconds)

    # -- accounts --------------------------------------------------------------------------------

    def _note_limit(self, attempt: Attempt, now: float, ops: list[Op]) -> None:
        """An early warning crossing `limit_threshold` (or falling back) is recorded at once."""
        limit, name = attempt.limit, attempt.account
        if limit is None or limit.utilization is None or name not in self.config.accounts:
            return
        attempt.limit = None
        state = self.states.get(name) or accounts.State()
        threshold = self.config.limit_threshold
        new = accounts.after_warning(state, limit.utilization, limit.resets_at, threshold, now)
        if new is not None:
            ops.append(self._account_op(name, new, "account_warning"))

    def _account_op(self, name: str, state: accounts.State, event: str) -> Op:
        self.states[name] = state
        return Op("", f"{event} {name}", files={accounts.state_path(name): state.to_bytes()})

    # -- ending ----------------------------------------------------------------------------------

    def _end(self, attempt: Attempt, code: int, now: float, ops: list[Op]) -> Op:
        """The attempt's process is gone: classify it, note its account, and record it."""
        attempt.flush(now)
        if attempt.spec is not None:
            side = attempt.coder.side_events(attempt.spec, attempt.parser.session_id)
            limits = [e.limit for e in side if e.limit and e.limit.utilization is not None]
            attempt.limit = max(
                limits, key=lambda lim: lim.utilization or 0.0, default=attempt.limit
            )
            self._note_limit(attempt, now, ops)
        self.running.pop(attempt.task_id, None)
        self.stops.ended(attempt.handle)
        task = self.store.cache.get(attempt.task_id) if attempt.stop.startswith("killed") else None
        end = ending.classify(attempt, code, task.run.stop if task and task.run else None)
        name = attempt.account
        if name in self.config.accounts:
            state = self.states.get(name) or accounts.State()
            after = accounts.after_attempt(state, end.outcome, end.reason, end.resets_at, now)
            if after is not None:
                ops.append(self._account_op(name, *after))
            other = accounts.other_for(self.config.accounts, name, attempt.coder.name)
            end.other_account = other
        prices = self.config.prices
        self._spent.append((name, attempt.usage, budgets.cost(attempt.usage, prices)))
        summary = ending.record(attempt, end, code, now, self.actor, prices)
        return ending.end_op(attempt, end, summary, now, self.policy)

    def _write_status(self, attempt: Attempt, now: float) -> None:
        attempt.status_lines, attempt.status_at = attempt.lines, now
        summary = attempt.summary()
        summary["usage"]["cost_usd"] = budgets.cost(attempt.usage, self.config.prices)
        ending.write_json(attempt.files.status, summary)

    def _write_waiting(self) -> None:
        if self.waiting != self._waiting_written:
            ending.write_json(waiting_path(self.store.home), self.waiting)
            self._waiting_written = dict(self.waiting)

    # -- adoption --------------------------------------------------------------------------------

    def _adopt(self, now: float, ops: list[Op]) -> None:
        """Take over the attempts of a dead supervisor of this host and this home."""
        for task in adopt.orphans(self.store, set(self.running), self.actor, self.host):
            attempt = adopt.rebuild(self.store, task, self.config.coder, now)
            if attempt.handle is None:
                token = task.run.token if task.run else ""
                ops.append(self._unrecorded(attempt, token, now, ops))
                continue
            attempt.read_output(now)
            attempt.last_output_at = max(attempt.last_output_at, now)
            self.running[task.id] = attempt
            ops.append(adopt.adopted_op(attempt, self.actor, self.pid))

    def _unrecorded(self, attempt: Attempt, token: str, now: float, ops: list[Op]) -> Op:
        """An attempt whose agent's handle was never recorded: its supervisor died at the spawn.

        The agent may not exist, may still run (it is stopped: it cannot be watched without its
        handle), or may have ended already (its wrapper wrote the exit code: it is recorded).
        """
        stopped = self.processes.sweep(token) if token else 0
        code = read_rc(attempt.files.rc)
        if code is not None:
            return self._end(attempt, code, now, ops)
        why = adopt.STOPPED_AT_START if stopped else adopt.UNSTARTED
        end = Ending(Outcome.KILLED, why)
        return ending.abandon_op(attempt.task_id, attempt.n, end, self.actor, now, self.policy)

    # -- dispatch --------------------------------------------------------------------------------

    def _choose(self, snap: Snapshot, now: float) -> list[Pick]:
        config, day = self.config, None
        if budgets.has_ceilings(config):
            prices = config.prices
            live = [
                (a.account, a.usage, budgets.cost(a.usage, prices)) for a in self.running.values()
            ]
            start = budgets.day_start(now)
            tasks = [Task.from_dict(b) for b in self.store.cache.updated_since(start)]
            day = budgets.today(tasks, live + self._spent, now)
        fleet = Fleet(config, self.running, self.states, day, os.environ, now)
        picks, self.waiting = choose(snap, self.store.cache.ready(now, waiting=False), fleet)
        return picks

    def _start(self, task_ids: list[str], now: float, report: TickReport) -> list[Op]:
        """Start the agents of the tasks this supervisor just claimed; an op for each."""
        claimed = [self.store.cache.get(task_id) for task_id in task_ids]
        tasks = [task for task in claimed if task is not None and task.run is not None]
        started = start_all(self.processes, [self._prepare(task, now) for task in tasks])
        return [self._started(t, r, now, report) for t, r in zip(tasks, started, strict=True)]

    def _prepare(self, task: Task, now: float) -> Prepared | LaunchError:
        try:
            return prepare(self.store, self.config, task, now)
        except LaunchError as exc:
            return exc

    def _started(
        self, task: Task, result: Attempt | LaunchError, now: float, report: TickReport
    ) -> Op:
        assert task.run is not None
        n = task.run.attempt
        if isinstance(result, LaunchError):
            end = Ending(Outcome.SETUP_ERROR, str(result))
            return ending.abandon_op(task.id, n, end, self.actor, now, self.policy)
        assert result.handle is not None
        self.running[task.id] = result
        report.started.append(task.id)
        live = {**result.summary(), "token": result.handle.token}
        return ending.live_op(task.id, n, "started", live)

    # -- stopping --------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every running agent (the supervisor is going away with --now)."""
        self.stopping = "now"
        for attempt in self.running.values():
            if not attempt.stop:
                attempt.stop = "killed"
                self.stops.stop(attempt.handle, self.config.grace_seconds)

    def wait_stops(self, timeout: float) -> None:
        """Finish the stops under way, and the look for what ended attempts left behind."""
        self.stops.wait(self.config.grace_seconds, timeout)
