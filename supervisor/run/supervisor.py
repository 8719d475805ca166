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

import os
import random
import socket

from coders.base import Outcome, Usage
from supervisor import budgets
from supervisor import config as config_mod
from supervisor.config import Config
from supervisor.errors import FleetError
from supervisor.lifecycle import Ending, Policy
from supervisor.model import Task
from supervisor.run import adopt, ending, finish, limits, ownership
from supervisor.run.accounting import Book
from supervisor.run.attempt import Attempt, Written, live_dir, waiting_path
from supervisor.run.dispatch import Fleet, Pick, choose, claim_op, today
from supervisor.run.hooks import Hooks
from supervisor.run.launch import LaunchError, start_all, try_prepare
from supervisor.run.ops import Op, Parsed, TickReport, commit
from supervisor.run.process import Processes
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
        self.book = Book()  # the accounts' state
        self.waiting: dict[str, str] = {}  # ready task id -> why it was not started
        self._waiting_file = Written(waiting_path(store.home))  # for `fleet tasks`
        self._config_text: str | None = None
        self.config_error = ""  # why config.toml cannot be used, while it cannot
        self._spent: list[tuple[str, Usage, float | None]] = []  # attempts ended in this tick
        self._adopt_at = 0.0  # when to look for orphaned attempts next
        self._parsed = Parsed()
        self.hooks = Hooks(store, self.actor, background_stops)  # roles, subtasks, merges, risk

    # -- the loop --------------------------------------------------------------------------------

    def tick(self, now: float) -> TickReport:
        report = TickReport()
        self._spent = []
        snap = self.store.snapshot()
        self._load(snap)
        self.config = self.hooks.config(snap, self.config)
        ops: list[Op] = []
        if now >= self._adopt_at:  # at the first tick, then now and then: orphans are rare
            self._adopt(now, ops)
            self._adopt_at = now + ADOPT_EVERY
        self._reconcile(snap, now, ops, report)
        picks = [] if self.stopping or self.config.paused else self._choose(snap, now)
        if self.config_error:  # the configuration cannot be trusted: nothing is claimed
            picks, self.waiting = [], dict.fromkeys(self.store.cache.ready(now), self.config_error)
        home = self.store.home
        claims = [
            claim_op(p, self.actor, self.host, self.pid, now, ownership.new_token(home))
            for p in picks
        ]
        won = commit(self.store, self.actor, claims)
        report.claimed = [p.task.id for p in picks if p.task.id in won]
        ops += self._start(report.claimed, now, report)
        ops += self.hooks.ops(snap, self.config, now)
        won = commit(self.store, self.actor, ops)
        self.stops.remove(
            [live_dir(home, op.task_id) for op in ops if op.ended and op.task_id in won]
        )
        self.stops.clear(now, self.config.grace_seconds)
        self._waiting_file.write(self.waiting)
        self.hooks.after(self.config, self._config_text or "", self.running, now, report)
        report.running = len(self.running)
        report.waiting = len(self.store.cache.ready(now, waiting=True))
        return report

    def _load(self, snap: Snapshot) -> None:
        """The configuration and the accounts' state, read again when they changed."""
        text = self.store.cache.config_text()
        if text != self._config_text:
            try:  # a bad one: claim nothing (stop nothing either) until it is repaired
                self.config, self.config_error = config_mod.load(text), ""
            except FleetError as exc:
                self.config_error = f"{exc.message}; no task starts until it is fixed"
                self.config_error += " (`fleet config edit`)"
            self._config_text = text
        self.book.load(self.store, snap, self.config)

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
            self._enforce(attempt, self._parsed.get(snap, task_id), now, ops)
            if now - attempt.checkpoint_at >= self.config.checkpoint_seconds:
                ops.append(ending.checkpoint_op(attempt, now))
            if attempt.lines != attempt.status_lines and now - attempt.status_at >= STATUS_EVERY:
                ending.write_status(attempt, now, self.config.prices)  # news, a second old

    def _enforce(self, attempt: Attempt, task: Task | None, now: float, ops: list[Op]) -> None:
        """Stop the attempt when asked to, or past a limit (time, silence, its task's budget)."""
        if attempt.stop:
            return
        reason, warnings = limits.check(self.config, attempt, task, self.stopping == "now", now)
        ops += warnings
        if reason:
            attempt.stop = reason
            self.stops.stop(attempt.handle, self.config.grace_seconds)

    def _note_limit(self, attempt: Attempt, now: float, ops: list[Op]) -> None:
        limit, attempt.limit = attempt.limit, None
        op = self.book.warning(attempt.account, limit, self.config, now) if limit else None
        ops += [op] if op else []

    # -- ending ----------------------------------------------------------------------------------

    def _end(self, attempt: Attempt, code: int, now: float, ops: list[Op]) -> Op:
        """The attempt's process is gone: classify it, note its account, and record it."""
        attempt.flush(now)
        ending.note_side_limit(attempt)
        self._note_limit(attempt, now, ops)
        self.running.pop(attempt.task_id, None)
        self.stops.ended(attempt.handle)
        judged = finish.judge(self.store, attempt, code, self.config)
        name = attempt.account
        op = self.book.ended(name, attempt.coder.name, judged.end, self.config, now)
        ops += [op] if op else []
        self._spent.append((name, attempt.usage, budgets.cost(attempt.usage, self.config.prices)))
        args = (attempt, judged, code, now, self.actor, self.config, self.policy)
        return finish.record_op(self.store, *args)

    # -- adoption --------------------------------------------------------------------------------

    def _adopt(self, now: float, ops: list[Op]) -> None:
        """Take over the attempts of a dead supervisor of this host and this home."""
        for task in adopt.orphans(self.store, set(self.running), self.actor, self.host):
            attempt = adopt.rebuild(self.store, task, self.config.coder, now)
            if not adopt.ours(self.store.home, task):  # never signal what this home did not start
                ops.append(self._abandon(attempt, Ending(Outcome.SETUP_ERROR, adopt.DISOWNED), now))
                continue
            if attempt.handle is None:
                end = adopt.unrecorded(self.processes, attempt, task.run.token if task.run else "")
                if isinstance(end, int):
                    ops.append(self._end(attempt, end, now, ops))
                else:
                    ops.append(self._abandon(attempt, end, now))
                continue
            attempt.read_output(now)
            attempt.last_output_at = max(attempt.last_output_at, now)
            self.running[task.id] = attempt
            ops.append(adopt.adopted_op(attempt, self.actor, self.pid))

    # -- dispatch --------------------------------------------------------------------------------

    def _choose(self, snap: Snapshot, now: float) -> list[Pick]:
        day = today(self.store, self.config, self.running, self._spent, now)
        fleet = Fleet(self.config, self.running, self.book.states, day, os.environ, now)
        fleet.quarantined = self.hooks.governor.quarantined
        picks, self.waiting = choose(snap, self.store.cache.ready(now, waiting=False), fleet)
        return picks

    def _start(self, task_ids: list[str], now: float, report: TickReport) -> list[Op]:
        """Start the agents of the tasks this supervisor just claimed; an op for each."""
        claimed = [self.store.cache.get(task_id) for task_id in task_ids]
        tasks = [task for task in claimed if task is not None and task.run is not None]
        started = start_all(
            self.processes, [try_prepare(self.store, self.config, t, now) for t in tasks]
        )
        return [self._started(t, r, now, report) for t, r in zip(tasks, started, strict=True)]

    def _started(
        self, task: Task, result: Attempt | LaunchError, now: float, report: TickReport
    ) -> Op:
        assert task.run is not None
        n = task.run.attempt
        if isinstance(result, LaunchError):
            return ending.abandon_op(
                task.id, n, Ending(Outcome.SETUP_ERROR, str(result)), self.actor, now, self.policy
            )
        assert result.handle is not None
        self.running[task.id] = result
        report.started.append(task.id)
        live = {**result.summary(), "token": result.handle.token}
        return ending.live_op(task.id, n, "started", live)

    def _abandon(self, attempt: Attempt, end: Ending, now: float) -> Op:
        return ending.abandon_op(attempt.task_id, attempt.n, end, self.actor, now, self.policy)

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
