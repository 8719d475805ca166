"""The governor: the supervisor's risk assessments and automatic quarantines.

After each tick in which an attempt ended, and at least every `risk_every` seconds while agents
run, it scores every account and role with attempts on record and every running agent
(`supervisor.risk`). A subject at or above `risk_threshold` is quarantined (`risk_quarantine`),
in a commit of its own whose body holds the evidence; with `risk_stop_running` its running
attempts are stopped and their tasks blocked, so their branches are not delivered. Dispatch reads
`quarantined` and claims nothing for a quarantined task, role, coder or account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supervisor import lifecycle, risk
from supervisor.config import Config
from supervisor.model import Task, parse_time
from supervisor.run import diffsig
from supervisor.run.attempt import Attempt
from supervisor.run.ops import TickReport
from supervisor.store import quarantine
from supervisor.store.attempts import Attempts
from supervisor.store.store import Change, Snapshot, Store


class Governor:
    def __init__(self, store: Store, actor: str) -> None:
        self.store = store
        self.actor = actor
        self.quarantined: dict[str, dict[str, Any]] = {}
        self.assessments: list[risk.Assessment] = []
        self._commit: str | None = "unread"
        self._next = 0.0
        self._table: Attempts | None = None

    def load(self, snap: Snapshot) -> None:
        """The quarantines in force, read again when the store moved."""
        if snap.commit != self._commit:
            self.quarantined = quarantine.read(self.store, snap.commit)
            self._commit = snap.commit

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None

    @property
    def table(self) -> Attempts:
        if self._table is None:
            self._table = Attempts(self.store.cache, self.store.home / "cache")
        return self._table

    def tick(
        self, config: Config, running: Mapping[str, Attempt], now: float, report: TickReport
    ) -> list[str]:
        """Assess when due; quarantine what crossed the threshold. The subjects quarantined."""
        if not report.ended and (now < self._next or not running):
            return []
        self._next = now + config.risk_every
        self.assessments = assess(self.table, config, live(running), now)
        if not config.risk_quarantine:
            return []
        done = []
        for found in self.assessments:
            if found.score < config.risk_threshold or found.subject in self.quarantined:
                continue
            reason = f"risk {found.score:.2f} >= {config.risk_threshold:g}"
            evidence = [found.explain(), *found.evidence[:30]]
            if quarantine.add(
                self.store, found.subject, reason, self.actor, now, evidence, found.score
            ):
                done.append(found.subject)
                self.quarantined[found.subject] = {"subject": found.subject, "reason": reason}
                if config.risk_stop_running:
                    self._stop(found.subject, reason, running, now)
        return done

    def _stop(self, subject: str, reason: str, running: Mapping[str, Attempt], now: float) -> None:
        """Ask the supervisor to stop the subject's running attempts, blocking their tasks."""
        kind, _, name = subject.partition(":")
        for task_id, attempt in running.items():
            task = self.store.cache.get(task_id)
            role = task.role if task else ""
            mine = (
                (kind == "task" and task_id == name)
                or (kind == "account" and attempt.account == name)
                or (kind == "coder" and attempt.coder.name == name)
                or (kind == "role" and role == name)
            )
            if mine:
                self._request_stop(task_id, attempt.n, f"quarantined: {subject}: {reason}", now)

    def _request_stop(self, task_id: str, n: int, block: str, now: float) -> None:
        def build(snap: Snapshot) -> tuple[Change | None, None]:
            task: Task | None = snap.get(task_id)
            run = lifecycle.current(task, n) if task is not None else None
            if task is None or run is None or run.stop is not None:
                return None, None
            lifecycle.request_stop(task, self.actor, "block", block, now)
            change = Change(f"kill {task_id}: {block}"[:120], "kill_requested")
            change.put(task)
            return change, None

        self.store.mutate(build, self.actor)


@dataclass
class Live:
    """A running agent as risk sees it."""

    task_id: str
    n: int
    idle_since: float  # its last output, or its start
    workdir: str


def live(running: Mapping[str, Attempt]) -> list[Live]:
    return [
        Live(t, a.n, max(a.last_output_at, a.started_at), a.workdir) for t, a in running.items()
    ]


def live_from_store(store: Store) -> list[Live]:
    """The running agents as the store records them (for the command line)."""
    found = []
    for body in store.cache.select(["in_progress"]):
        task = Task.from_dict(body)
        run = task.run.to_dict() if task.run else {}
        stamps = [str(run.get(k) or "") for k in ("last_output_at", "started_at")]
        times = [parse_time(x) for x in stamps if x]
        found.append(
            Live(
                task.id,
                int(run.get("attempt") or 0),
                max(times, default=0.0),
                str(run.get("workdir") or ""),
            )
        )
    return found


LIVE_DIFF_EVERY = 30.0  # seconds between two reads of a running agent's worktree
_live_diffs: dict[tuple[str, int], tuple[float, dict[str, Any] | None]] = {}


def live_diff(agent: Live, now: float) -> dict[str, Any] | None:
    """A running agent's diff signals, read again at most every LIVE_DIFF_EVERY seconds (seven
    git processes per agent: with fifty agents, reading them at every assessment would cost
    the supervisor more than its whole budget)."""
    key = (agent.task_id, agent.n)
    seen = _live_diffs.get(key)
    if seen is None or now - seen[0] >= LIVE_DIFF_EVERY or now < seen[0]:
        seen = (now, diffsig.signals(agent.workdir, agent.task_id))
        _live_diffs[key] = seen
        if len(_live_diffs) > 4096:
            _live_diffs.pop(next(iter(_live_diffs)))
    return seen[1]


def assess(
    table: Attempts, config: Config, agents: list[Live], now: float
) -> list[risk.Assessment]:
    """A risk score for every account and role on record and every running agent."""
    weight = risk.weights(config.risk_weights)
    found = []
    for subject in table.subjects():
        column, _, value = subject.partition(":")
        signals, evidence = risk.operational(table.last(column, value, config.risk_window))
        found.append(risk.assess(subject, signals, weight, evidence))
    for agent in agents:
        # its worktree now holds what its earlier attempts changed: their diffs are not added
        earlier = [
            {**a, "diff": None} for a in table.last("task", agent.task_id, config.risk_window)
        ]
        signals, evidence = risk.operational(earlier)
        idle = max(0.0, now - agent.idle_since) if agent.idle_since else 0.0
        signals["silent"] = round(idle / config.stall_seconds, 3)
        diff = live_diff(agent, now)
        if diff is not None:
            for name in risk.DIFF_SIGNALS:
                signals[name] += float(diff.get(name) or 0.0)
            where = f"{agent.task_id}#{agent.n} (running)"
            evidence += [f"{where} {e}" for e in diff.get("evidence", [])]
        found.append(risk.assess(f"task:{agent.task_id}", signals, weight, evidence))
    return sorted(found, key=lambda a: (-a.score, a.subject))
