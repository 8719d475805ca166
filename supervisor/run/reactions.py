"""Reactions: the events since the last look, turned into what the `[[on]]` rules ask, and the
built-in consequences of a handoff (a review's verdict, a gate that starts waiting or times out).

Exactly once: where the reactions stopped is a file of the store (`state/reactions.json`), moved
in the same commit as the reactions themselves, so a supervisor killed at any instant neither
skips nor repeats one, and two supervisors never both react to one event. Commands (`run`) start
only after that commit landed.

Guards: a task reopened by rules `max_reopens` times is blocked instead; a task that a chain of
`max_chain` rule-created tasks would extend is blocked instead; so a cycle of rules stops.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor import gates, handoffs, subscriptions
from supervisor.config import Config
from supervisor.events import Event, emit_line, parse_emit
from supervisor.model import Dependency, Task, iso, new_id
from supervisor.store import feed
from supervisor.store.paths import run_file
from supervisor.store.store import Change, Snapshot, Store

STATE_PATH = "state/reactions.json"
VERDICTS = ("approved", "changes_requested")
ACTOR = "fleet-reactions"
PASSES = 3  # looks per tick: a verdict and what a rule does with it land in one tick


@dataclass
class Outcome:
    """What one look did."""

    events: int = 0
    emitted: list[str] = field(default_factory=list)  # event types
    created: list[str] = field(default_factory=list)
    commands: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    skipped: str = ""  # looked up to this commit, and nothing was asked for


def read_state(snap: Snapshot) -> dict[str, Any] | None:
    data = snap.read(STATE_PATH)
    if data is None:
        return None
    try:
        state = json.loads(data)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def start_here(snap: Snapshot, head: str | None) -> dict[str, bytes]:
    """The file that makes reactions start after commit `head` (for a commit that installs
    rules: they react to what happens from then on)."""
    if read_state(snap) is not None or head is None:
        return {}
    return {STATE_PATH: _dump({"after": head, "waiting": {}})}


def react(
    store: Store,
    config: Config,
    config_text: str,
    now: float,
    seen: dict[str, str] | None = None,
) -> Outcome:
    """React to the events since the last look; one commit (none when nothing happened).

    Events that ask for nothing move no file: `seen` (kept by the caller) remembers how far
    past the stored position this process has looked, so the next look starts there; after a
    restart they are looked at once more, and ask for nothing again.
    """
    head = store.head()
    if head is None:
        return Outcome()
    snap = store.snapshot()
    state = read_state(snap)
    if state is None:  # first look: start from here

        def begin(s: Snapshot) -> tuple[Change | None, None]:
            files: dict[str, bytes | None] = dict(start_here(s, head))
            return (Change("reactions: start", "reacted", files=files) if files else None), None

        store.mutate(begin, ACTOR)
        return Outcome()
    after = str(state.get("after") or "")
    start = (seen or {}).get(after, after)
    timeouts = _due(state, config, now)
    if start == head and not timeouts:
        return Outcome()
    found = feed.events(store, feed.commits(store, start, head)) if start != head else []
    rules = subscriptions.parse_rules(config_text, config.on) if config.on else []

    def build(snap: Snapshot) -> tuple[Change | None, Outcome]:
        fresh = read_state(snap)
        if fresh is None or fresh.get("after") != after:
            return None, Outcome()  # another reactor got there first
        work = _Work(snap, config, now, dict(fresh.get("waiting") or {}))
        for task_id in timeouts:
            work.timeout(task_id)
        for event in found:
            work.builtin(event)
            for rule in rules:
                if subscriptions.matches(rule, event, work.body(event.task)):
                    work.apply(rule, event)
        idle = not (work.changed or work.emits or work.commands)
        if idle and work.waiting == dict(fresh.get("waiting") or {}):
            return None, Outcome(len(found), skipped=head)  # nothing to write
        new_state = {"after": head, "waiting": work.waiting}
        kinds = [*work.emitted, *(kind for kind, _ in work.actions if kind)]
        change = Change(_summary(work, len(found)), ",".join(dict.fromkeys(kinds)) or "reacted")
        for task in work.changed.values():
            change.put(task)
        change.tasks += [t for t in dict.fromkeys(work.named) if t not in change.tasks]
        change.files[STATE_PATH] = _dump(new_state)
        change.details = "\n".join(work.emits)
        result = Outcome(len(found), work.emitted, work.created, work.commands)
        return change, result

    outcome = store.mutate(build, ACTOR)
    if seen is not None:
        seen.clear()
        if outcome.skipped:
            seen[after] = outcome.skipped
    for command, env in outcome.commands:
        _run(store.home, command, env)
    return outcome


class _Work:
    """The reactions of one look, built on one snapshot."""

    def __init__(self, snap: Snapshot, config: Config, now: float, waiting: dict[str, Any]):
        self.snap, self.config, self.now = snap, config, now
        self.waiting = waiting
        self.changed: dict[str, Task] = {}
        self.emits: list[str] = []
        self.emitted: list[str] = []
        self.created: list[str] = []
        self.commands: list[tuple[str, dict[str, str]]] = []
        self.actions: list[tuple[str, str]] = []  # (kind, what), for the commit message
        self.named: list[str] = []  # the tasks the emitted events are about

    def task(self, task_id: str) -> Task | None:
        if task_id in self.changed:
            return self.changed[task_id]
        return self.snap.get(task_id) if task_id else None

    def body(self, task_id: str) -> dict[str, Any] | None:
        task = self.task(task_id)
        return task.to_dict() if task else None

    def did(self, kind: str, text: str) -> None:
        """Note an action for the commit's summary and its event trailer."""
        self.actions.append((kind, text))

    def emit(self, type: str, task: str, data: dict[str, Any]) -> None:
        self.emits.append(emit_line(type, task, data))
        self.emitted.append(type)
        if task:
            self.named.append(task)

    def save(self, task: Task) -> None:
        self.changed[task.id] = task

    # -- what fleet does by itself --------------------------------------------------------

    def builtin(self, event: Event) -> None:
        if event.type == "attempt.ended" and event.data.get("outcome") == "success":
            self._verdict(event)
        elif event.type == "task.closed":
            task = self.task(event.task)
            if task is None or task.status != "closed":
                return
            verdict = gates.may_deliver(task, gates.approvals(task), self.config)
            if verdict.waiting_for:
                self.waiting[task.id] = {"since": self.now, "work": gates.work(task)}
                self.emit("gate.waiting", task.id, {"waiting_for": verdict.waiting_for})
        elif event.type in ("gate.open", "task.reopened", "task.deleted"):
            gone = self.waiting.pop(event.task, None)
            if gone is not None and event.type != "gate.open":
                self.did("", f"{event.task} no longer waits at its gate ({event.type})")

    def _verdict(self, event: Event) -> None:
        """A review task's result with a verdict raises `review.verdict`."""
        task = self.task(event.task)
        origin = task.extra.get("origin") if task else None
        if task is None or not isinstance(origin, dict):
            return
        n = int(event.data.get("n") or 0)
        data = self.snap.read(run_file(task.id, n, "result.json"))
        try:
            result = json.loads(data) if data else {}
        except ValueError:
            result = {}
        if not isinstance(result, dict) or "verdict" not in result:
            return
        verdict = result.get("verdict")
        comments = result.get("comments") or []
        if verdict not in VERDICTS:
            self.emit("rule.failed", task.id, {"reason": f"verdict {verdict!r} is not valid"})
            return
        self.emit(
            "review.verdict",
            task.id,
            {
                "verdict": verdict,
                "comments": [str(c) for c in comments] if isinstance(comments, list) else [],
                "summary": str(result.get("summary") or ""),
                "for": str(origin.get("task") or ""),
                "work": origin.get("work"),
                "role": task.role,
                **{k: event.data.get(k, "") for k in ("coder", "model", "account")},
            },
        )

    def timeout(self, task_id: str) -> None:
        entry = self.waiting.get(task_id)
        if isinstance(entry, dict):
            entry["timed_out"] = True
            waited = round(self.now - float(entry.get("since") or self.now))
            self.emit("gate.timeout", task_id, {"waited_seconds": waited})

    # -- the rules -------------------------------------------------------------------------

    def apply(self, rule: subscriptions.Rule, event: Event) -> None:
        if rule.action == "create":
            self._create(rule, event)
        elif rule.action == "reopen":
            self._reopen(rule, event)
        elif rule.action == "approve":
            self._approve(rule, event)
        else:
            env = {
                "FLEET_EVENT": json.dumps(event.to_dict()),
                "FLEET_EVENT_TYPE": event.type,
                "FLEET_EVENT_TASK": event.task,
            }
            self.commands.append(
                (subscriptions.render(rule.command, event, self.body(event.task)), env)
            )

    def _target(self, rule: subscriptions.Rule, event: Event) -> Task | None:
        task = self.task(event.task)
        if rule.target == "origin" and task is not None:
            origin = task.extra.get("origin")
            wanted = str(origin.get("task") or "") if isinstance(origin, dict) else ""
            return self.task(str(event.data.get("for") or wanted))
        return task

    def _guard(self, task: Task | None, reason: str, closed_too: bool = False) -> None:
        if (
            task is not None
            and task.status != "blocked"
            and (closed_too or task.status != "closed")
        ):
            handoffs.block(task, reason, self.now)
            self.save(task)
            self.did("blocked", f"block {task.id} (loop guard)")
        self.emit("loop.blocked", task.id if task else "", {"reason": reason})

    def _create(self, rule: subscriptions.Rule, event: Event) -> None:
        source = self.task(event.task)
        body = source.to_dict() if source else {}
        depth = (handoffs.chain(source) if source else 0) + 1
        if depth > self.config.max_chain:
            self._guard(
                source,
                f"loop guard: {rule.name()} would make a chain of {depth} rule-made tasks "
                f"(max_chain = {self.config.max_chain})",
            )
            return
        spec = rule.create
        prefix = self.snap.store.cache.id_prefix() or "fl"
        task_id = new_id(prefix, self.snap.store.cache.count() + len(self.created))
        while self.task(task_id) is not None:
            task_id = new_id(prefix, self.snap.store.cache.count(), 1)
        stamp = iso(self.now)
        deps = []
        for dep in spec.get("deps", []):
            target = event.task if dep == "task" else subscriptions.render(dep, event, body)
            if target and self.task(target) is not None:
                deps.append(Dependency(task_id, target, "blocks", stamp))
        if source is not None:
            deps.append(Dependency(task_id, source.id, "related", stamp))
        task = Task(
            id=task_id,
            title=subscriptions.render(spec["title"], event, body)[:500],
            description=subscriptions.render(str(spec.get("description", "")), event, body),
            acceptance_criteria=subscriptions.render(str(spec.get("acceptance", "")), event, body),
            priority=int(spec.get("priority", source.priority if source else 2)),
            labels=sorted(set(spec.get("labels", []))),
            dependencies=deps,
            created_at=stamp,
            updated_at=stamp,
            cwd=source.cwd if source else "",
            role=str(spec.get("role") or ""),
        )
        task.extra["origin"] = {
            "task": event.task,
            "event": event.type,
            "rule": rule.index + 1,
            "chain": depth,
            "knowledge": list(spec.get("knowledge", [])),
            "work": gates.work(source) if source else 0,
        }
        if spec.get("requires"):
            task.extra["requires"] = list(spec["requires"])
        if task.role and task.role not in self.config.roles:
            reason = f"{rule.name()} names role {task.role!r}, which does not exist"
            handoffs.block(task, f"{reason} (add it: `fleet roles add {task.role}`)", self.now)
            self.emit("rule.failed", task_id, {"rule": rule.index + 1, "reason": reason})
        elif "diff" in spec.get("knowledge", []) and source is not None:
            refusal = self._pick_reviewer(task, source)
            if refusal:
                handoffs.block(task, refusal, self.now)
                self.emit("review.refused", task_id, {"for": source.id, "reason": refusal})
        self.save(task)
        self.created.append(task_id)
        self.did("created", f"create {task_id} ({task.role or 'no role'}) for {event.task}")

    def _pick_reviewer(self, review: Task, source: Task) -> str:
        """Give the review an identity (coder, model, account) other than the author's; why
        not, when none is configured."""
        import coders

        author = gates.author(source)
        if author is None:
            return ""
        config = self.config
        role = config.roles.get(review.role)
        coder = (role.coder if role else "") or config.coder
        settings = config.coders.get(coder)
        model = (role.model if role else "") or (settings.model if settings else "")
        if not model:
            try:
                model = coders.get(coder).default_model
            except KeyError:
                model = ""
        pinned = role.account if role else ""
        if pinned:
            choices = [pinned]
        elif role and role.accounts:
            choices = list(role.accounts)
        else:
            choices = sorted(n for n, a in config.accounts.items() if a.coder == coder) or [""]
        for account in choices:
            if (coder, model, account) != author:
                if account and not pinned:
                    review.account = account  # dispatch might pick the author's otherwise
                return ""
        return (
            f"refused: the reviewer would have the author's identity "
            f"(coder {coder}, model {model or 'default'}, account {author[2] or 'none'}); "
            f"configure another model or account for role {review.role} "
            f"(`fleet roles set {review.role} model=...`)"
        )

    def _reopen(self, rule: subscriptions.Rule, event: Event) -> None:
        task = self._target(rule, event)
        if task is None or task.run is not None or task.status == "open":
            return
        limit = self.config.max_reopens
        if handoffs.reopens(task) >= limit:
            self._guard(
                task,
                f"loop guard: reopened {handoffs.reopens(task)} times by rules "
                f"(max_reopens = {limit}); last by {event.task}: {event.data.get('summary', '')}",
                closed_too=True,
            )
            return
        handoff = {
            "by": event.task,
            "event": event.type,
            "verdict": str(event.data.get("verdict") or "rework"),
            "summary": str(event.data.get("summary") or ""),
            "comments": list(event.data.get("comments") or []),
        }
        handoffs.reopen_for_rework(task, handoff, self.now)
        self.waiting.pop(task.id, None)  # its work is being redone: its gate waits no more
        self.save(task)
        self.did("reopened", f"reopen {task.id}: {handoff['verdict']} by {event.task}")

    def _approve(self, rule: subscriptions.Rule, event: Event) -> None:
        task = self._target(rule, event)
        reviewer = self.task(event.task)
        if task is None or reviewer is None or rule.target != "origin":
            return
        verdict = str(event.data.get("verdict") or "approved")
        if verdict != "approved":
            return
        record = {
            "kind": "role",
            "role": reviewer.role,
            "by": reviewer.id,
            "verdict": "approved",
            "work": event.data.get("work", gates.work(task)),
            "at": iso(self.now),
            **{k: str(event.data.get(k) or "") for k in ("coder", "model", "account")},
        }
        if gates.identity(record) == gates.author(task):
            record["verdict"] = "refused"
            record["reason"] = "the reviewer has the author's identity"
            self.emit("review.refused", task.id, {"by": reviewer.id, "reason": record["reason"]})
        approvals = gates.approvals(task)
        task.extra["approvals"] = [*approvals, record]
        gates.release(task, self.config, iso(self.now))  # gated work joins the merge queue
        self.save(task)
        self.did("", f"{record['verdict']} {task.id} as role:{reviewer.role} by {reviewer.id}")
        if record["verdict"] != "approved":
            return
        self.emit("gate.approved", task.id, {"by": reviewer.id, "as": f"role:{reviewer.role}"})
        if gates.may_deliver(task, gates.approvals(task), self.config).ok:
            self.waiting.pop(task.id, None)
            self.emit(
                "gate.open",
                task.id,
                {
                    "approved_by": gates.may_deliver(
                        task, gates.approvals(task), self.config
                    ).approved_by
                },
            )


def _due(state: dict[str, Any], config: Config, now: float) -> list[str]:
    limit = config.gate_timeout_seconds
    if not limit:
        return []
    waiting = state.get("waiting") or {}
    return sorted(
        task_id
        for task_id, entry in waiting.items()
        if isinstance(entry, dict)
        and not entry.get("timed_out")
        and now - float(entry.get("since") or now) >= limit
    )


def _summary(work: _Work, count: int) -> str:
    """The commit's first line: what the reactions did, for `fleet log`."""
    parts = []
    for line in work.emits:
        parsed = parse_emit(line.split(": ", 1)[1])
        if parsed:
            kind, task, data = parsed
            detail = data.get("verdict") or ""
            parts.append(f"{kind} {task}" + (f" ({detail})" if detail else ""))
    parts += [text for _, text in work.actions]
    return "react: " + ("; ".join(parts) if parts else f"{count} events")


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


_STARTED: list[subprocess.Popen[bytes]] = []  # rules' commands, reaped as they end


def _run(home: Path, command: str, env: dict[str, str]) -> None:
    """Start a rule's command in a session of its own; its output goes to logs/on.log."""
    _STARTED[:] = [p for p in _STARTED if p.poll() is None]
    log = home / "logs" / "on.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=home,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _STARTED.append(proc)


class Reactor:
    """The supervisor's reactions: a look at every tick whose head is new, when there is
    anything to react for (rules, roles that require approvals, or a gate timeout)."""

    def __init__(self) -> None:
        self._head: str | None = None
        self._seen: dict[str, str] = {}  # stored position -> how far past it this one looked

    def tick(self, store: Store, config: Config, config_text: str, now: float) -> Outcome:
        head = store.head()
        if head is None or (head == self._head and not config.gate_timeout_seconds):
            return Outcome()
        wanted = (
            config.on
            or config.gate_timeout_seconds
            or any(r.requires for r in config.roles.values())
            or _has_state(store, head)  # a task with a gate of its own started them
        )
        if not wanted:
            self._head = head
            return Outcome()
        outcome = last = react(store, config, config_text, now, self._seen)
        for _ in range(PASSES - 1):  # react to the reactions' own events in the same tick
            if not (last.emitted or last.created):
                break
            last = react(store, config, config_text, now, self._seen)
            outcome = Outcome(
                outcome.events + last.events,
                outcome.emitted + last.emitted,
                outcome.created + last.created,
                outcome.commands + last.commands,
            )
        # what the last look made is looked at next tick, even if nothing else moves the ref
        self._head = None if (last.emitted or last.created) else store.head()
        return outcome


def _has_state(store: Store, commit: str) -> bool:
    """Whether the store holds a reactions position (read from the trees, no process)."""
    trees = store.git.trees
    state = trees.entries(trees.commit_tree(commit)).get("state")
    return state is not None and "reactions.json" in trees.entries(state[1])
