"""The task model: plain data with beads' field names, and the rules that judge it.

Pure: standard library only, no I/O. Everything else imports this module, so it stays cheap to
import (the CLI's hot paths, `fleet bd create` among them, never load pydantic).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from supervisor.errors import BadInput

FLEET_STATUSES = ("open", "in_progress", "blocked", "deferred", "closed")
# and beads' own, kept as they come from an import; fleet never sets them
STATUSES = (*FLEET_STATUSES, "pinned", "hooked")

# Dependency types that keep a task out of the ready set (beads' `AffectsReadyWork`).
BLOCKING_TYPES = frozenset({"blocks", "conditional-blocks", "waits-for"})
PARENT_TYPE = "parent-child"
KNOWN_DEP_TYPES = (
    "blocks",
    "parent-child",
    "conditional-blocks",
    "waits-for",
    "related",
    "discovered-from",
    "replies-to",
    "relates-to",
    "duplicates",
    "supersedes",
    "tracks",
    "caused-by",
    "validates",
    "until",
    "delegated-from",
)
# Issue types beads never offers as ready work.
NOT_WORK_TYPES = frozenset({"merge-request", "gate", "molecule", "message", "agent", "role", "rig"})
TYPE_ALIASES = {
    "enhancement": "feature",
    "feat": "feature",
    "dec": "decision",
    "adr": "decision",
    "investigation": "spike",
    "timebox": "spike",
    "user-story": "story",
    "ms": "milestone",
}

# `\Z`, not `$`: `$` also matches before a final newline, and ids end up in paths.
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*-[0-9a-z]{1,16}(?:\.[0-9]{1,4}){0,4}\Z")
EXTERNAL_PATTERN = re.compile(r"^external:[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{1,64}\Z")
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,15}\Z")
DEP_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,49}\Z")
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

# Fields fleet adds to a beads issue. In beads JSONL they travel inside `metadata.fleet`.
FLEET_FIELDS = (
    "cwd",
    "coder",
    "model",
    "role",
    "account",
    "command",
    "max_seconds",
    "max_tokens",
    "max_cost",
    "max_attempts",
    "after_children",
    "isolation",
    "deliver",
    "check",
    "base_branch",
)
ISOLATIONS = ("worktree", "none")  # a task's own choice; "" follows the configuration
DELIVER_MODES = ("merge", "branch", "none")


def now_iso() -> str:
    return iso(time.time())


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 in UTC with microseconds (`datetime` is not imported for it:
    `bd create` feels every import)."""
    seconds = int(ts // 1)
    micros = round((ts - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def parse_time(value: str) -> float:
    """RFC 3339 (any offset, `Z`, fractional seconds of any length) -> epoch seconds."""
    from datetime import UTC, datetime

    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match:  # fromisoformat takes at most 6 fractional digits; Go writes 9
        frac = (match.group(2) or "")[:7]
        text = match.group(1) + frac + match.group(3)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def check_id(value: str, what: str = "task id") -> str:
    if not ID_PATTERN.match(value):
        raise BadInput(
            f"{what} {value!r} is not valid: ids look like 'fl-3k9x' "
            "(lowercase prefix, '-', base36 hash, optional .N children)",
            hint="run `fleet bd list` to see the ids in this store",
        )
    return value


def check_dep_target(value: str) -> str:
    if EXTERNAL_PATTERN.match(value):
        return value
    return check_id(value, "dependency target")


def base36(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, rem = divmod(number, 36)
        digits.append(BASE36[rem])
    return "".join(reversed(digits))


def new_id(prefix: str, existing: int, widen: int = 0) -> str:
    """A new id: prefix, '-', random base36, as long as beads' adaptive ids (4 characters up to
    500 tasks, then 5, 6, 8) plus `widen` after collisions."""
    length = 4 if existing < 500 else 5 if existing < 1500 else 6 if existing < 20000 else 8
    return f"{prefix}-{base36(int.from_bytes(os.urandom(12), 'big'), min(16, length + widen))}"


class Record:
    """Plain data: equal to a record of its class with equal fields, and shown with them.

    The classes `bd create` loads are written out rather than made with `dataclasses`, whose
    import (it loads `inspect`) costs `bd create` about 15 ms.
    """

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Dependency(Record):
    """`issue_id` depends on (is blocked by, or is a child of) `depends_on_id`."""

    def __init__(
        self,
        issue_id: str,
        depends_on_id: str,
        type: str = "blocks",
        created_at: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.issue_id = issue_id
        self.depends_on_id = depends_on_id
        self.type = type
        self.created_at = created_at
        self.extra: dict[str, Any] = {} if extra is None else extra  # created_by, metadata, ...

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "issue_id": self.issue_id,
            "depends_on_id": self.depends_on_id,
            "type": self.type,
        }
        if self.created_at:
            out["created_at"] = self.created_at
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], issue_id: str) -> Dependency:
        rest = {
            k: v
            for k, v in data.items()
            if k not in ("issue_id", "depends_on_id", "type", "created_at")
        }
        target = data.get("depends_on_id")
        if not isinstance(target, str) or not target:
            raise ValueError("dependency without depends_on_id")
        dep_type = data.get("type") or "blocks"
        if not isinstance(dep_type, str) or not DEP_TYPE_PATTERN.match(dep_type):
            raise ValueError(f"dependency type {dep_type!r} is not valid")
        return cls(
            issue_id=str(data.get("issue_id") or issue_id),
            depends_on_id=target,
            type=dep_type,
            created_at=str(data.get("created_at") or ""),
            extra=rest,
        )


class Stop(Record):
    """A person's request to stop the running attempt, and what then becomes of the task.

    `then`: "hold" (blocked until `fleet retry`/`fleet resume`), "requeue" (open again),
    "block" (blocked with `reason`) or "cancel" (closed as not done with `reason`). Stores of
    earlier versions hold only `by`, `at` and `block`: a `block` means "block", none "requeue".
    """

    def __init__(self, by: str, at: str = "", then: str = "hold", reason: str = "") -> None:
        self.by = by
        self.at = at
        self.then = then
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        # `block` keeps earlier supervisors doing the right thing: they block the task with it
        block = self.reason if self.then in ("block", "cancel") else ""
        if self.then == "hold":
            block = f"held: stopped by {self.by}"
        return {
            "by": self.by,
            "block": block,
            "at": self.at,
            "then": self.then,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stop:
        block = str(data.get("block") or "")
        then = str(data.get("then") or ("block" if block else "requeue"))
        reason = str(data.get("reason") or (block if then == "block" else ""))
        return cls(str(data.get("by") or "?"), str(data.get("at") or ""), then, reason)


# The typed fields of a run record, in the order its JSON lists them, with their empty values.
RUN_FIELDS: dict[str, Any] = {
    "attempt": 0,
    "actor": "",
    "host": "",
    "supervisor_pid": 0,
    "coder": "",
    "model": "",
    "account": "",
    "claimed_at": "",
    "started_at": "",
    "token": "",
    "workdir": "",
    "last_output_at": "",
    "lines": 0,
    "usage": None,
    "session_id": "",
    "handle": None,
    "budget_warning": "",
    "role": "",  # the role the attempt runs as (the task's, or triage's or the refiner's)
    "purpose": "",  # "" (the work), "triage" or "refine"
    "missing": None,  # for "refine": what the task lacks
}


class Run(Record):
    """The attempt running now, as the task's `run` record holds it (JSON: `run`)."""

    def __init__(self, attempt: int, **fields: Any) -> None:
        self.attempt = attempt
        self.actor: str = fields.pop("actor", "")
        self.host: str = fields.pop("host", "")
        self.supervisor_pid: int = fields.pop("supervisor_pid", 0)
        self.coder: str = fields.pop("coder", "")
        self.model: str = fields.pop("model", "")
        self.account: str = fields.pop("account", "")
        self.claimed_at: str = fields.pop("claimed_at", "")
        self.started_at: str = fields.pop("started_at", "")
        self.token: str = fields.pop("token", "")  # every process of the attempt carries it
        self.workdir: str = fields.pop("workdir", "")
        self.last_output_at: str = fields.pop("last_output_at", "")
        self.lines: int = fields.pop("lines", 0)
        self.usage: dict[str, Any] | None = fields.pop("usage", None)
        self.session_id: str = fields.pop("session_id", "")
        self.handle: dict[str, Any] | None = fields.pop("handle", None)  # the process's handle
        self.budget_warning: str = fields.pop("budget_warning", "")
        self.role: str = fields.pop("role", "")
        self.purpose: str = fields.pop("purpose", "")
        self.missing: list[str] | None = fields.pop("missing", None)
        self.stop: Stop | None = fields.pop("stop", None)
        self.extra: dict[str, Any] = fields.pop("extra", None) or {}
        if fields:
            raise TypeError(f"Run has no field {', '.join(fields)}")

    def update(self, live: dict[str, Any]) -> None:
        """Take the typed fields of `live` (an attempt's summary); the rest goes to `extra`."""
        for key, value in live.items():
            if key == "stop":
                self.stop = Stop.from_dict(value) if isinstance(value, dict) else None
            elif key == "attempt":
                self.attempt = int(value)
            elif key in RUN_FIELDS:
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, empty in RUN_FIELDS.items():
            value = getattr(self, name)
            if value != empty:
                out[name] = value
        if self.stop is not None:
            out["stop"] = self.stop.to_dict()
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        attempt = data.get("attempt", 0)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValueError("run.attempt is not a non-negative integer")
        run = cls(attempt)
        run.update({k: v for k, v in data.items() if k != "attempt"})
        return run


# Field order of a task file; anything else a beads import brings is kept in `extra`.
TEXT_FIELDS = ("title", "description", "design", "acceptance_criteria", "notes")


class Task(Record):
    """A task as its file holds it: beads' fields, fleet's own, and the supervisor's records."""

    def __init__(
        self,
        id: str,
        title: str,
        description: str = "",
        design: str = "",
        acceptance_criteria: str = "",
        notes: str = "",
        status: str = "open",
        priority: int = 2,
        issue_type: str = "task",
        assignee: str = "",
        labels: list[str] | None = None,
        dependencies: list[Dependency] | None = None,
        created_at: str = "",
        updated_at: str = "",
        closed_at: str = "",
        close_reason: str = "",
        defer_until: str = "",
        metadata: dict[str, Any] | None = None,
        cwd: str = "",
        coder: str = "",
        model: str = "",
        role: str = "",
        account: str = "",
        command: str = "",
        max_seconds: float | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_attempts: int | None = None,
        after_children: str = "",
        isolation: str = "",
        deliver: str = "",
        check: str = "",
        base_branch: str = "",
        status_reason: str = "",
        not_before: str = "",
        attempts: list[dict[str, Any]] | None = None,
        retry_base: int = 0,
        run: Run | None = None,
        subtasks: list[str] | None = None,
        waiting_on_subtasks: bool = False,
        route: dict[str, Any] | None = None,
        delivery: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.title = title
        self.description = description
        self.design = design
        self.acceptance_criteria = acceptance_criteria
        self.notes = notes
        self.status = status
        self.priority = priority
        self.issue_type = issue_type
        self.assignee = assignee
        self.labels: list[str] = [] if labels is None else labels
        self.dependencies: list[Dependency] = [] if dependencies is None else dependencies
        self.created_at = created_at
        self.updated_at = updated_at
        self.closed_at = closed_at
        self.close_reason = close_reason
        self.defer_until = defer_until
        self.metadata: dict[str, Any] = {} if metadata is None else metadata
        # fleet's own fields
        self.cwd = cwd
        self.coder = coder
        self.model = model
        self.role = role
        self.account = account
        self.command = command
        self.max_seconds = max_seconds
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.max_attempts = max_attempts
        self.after_children = after_children  # once its subtasks close: close or integrate
        self.isolation = isolation  # worktree, none, or "" for the configuration's
        self.deliver = deliver  # merge, branch or none; "" for the configured default
        self.check = check  # the command a merge must pass; "" for the configured one
        self.base_branch = base_branch  # the branch checked out in cwd's repository at create
        # the supervisor's bookkeeping
        self.status_reason = status_reason  # why the task is blocked, or why it waits
        self.not_before = not_before  # a retry waits until then (backoff, rate-limit reset)
        self.attempts: list[dict[str, Any]] = [] if attempts is None else attempts  # summaries
        self.retry_base = retry_base  # attempts before this index no longer count (`fleet retry`)
        self.run = run  # the attempt running now: actor, pid, started_at, ...
        self.subtasks: list[str] = [] if subtasks is None else subtasks  # children it created
        self.waiting_on_subtasks = waiting_on_subtasks  # blocked until its subtasks close
        self.route = route  # how its role was chosen: role, by (rule/triage/person), reason
        self.delivery = delivery  # where its work stands: queued, merged, waiting, failures, ...
        self.extra: dict[str, Any] = {} if extra is None else extra  # beads fields not modeled

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "title": self.title}
        for name in TEXT_FIELDS[1:]:
            if getattr(self, name):
                out[name] = getattr(self, name)
        out["status"] = self.status
        out["priority"] = self.priority
        out["issue_type"] = self.issue_type
        for name in ("assignee",):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.labels:
            out["labels"] = list(self.labels)
        if self.dependencies:
            out["dependencies"] = [d.to_dict() for d in self.dependencies]
        for name in ("created_at", "updated_at", "closed_at", "close_reason", "defer_until"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.metadata:
            out["metadata"] = self.metadata
        for name in (*FLEET_FIELDS, "status_reason", "not_before"):
            value = getattr(self, name)
            if value not in ("", None):
                out[name] = value
        if self.attempts:
            out["attempts"] = self.attempts
        if self.retry_base:
            out["retry_base"] = self.retry_base
        if self.run is not None:
            out["run"] = self.run.to_dict()
        if self.subtasks:
            out["subtasks"] = list(self.subtasks)
        if self.waiting_on_subtasks:
            out["waiting_on_subtasks"] = True
        if self.route is not None:
            out["route"] = self.route
        if self.delivery is not None:
            out["delivery"] = self.delivery
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """Build a task from stored or imported JSON; raises ValueError naming the field."""
        known = set(TASK_FIELDS) - {"extra"}
        task_id = data.get("id")
        if not isinstance(task_id, str) or not ID_PATTERN.match(task_id):
            raise ValueError(f"id {task_id!r} is not a valid task id")
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValueError("title is missing or empty")
        if len(title) > 500:
            raise ValueError("title is longer than 500 characters")
        task = cls(id=task_id, title=title)
        for name in (*TEXT_FIELDS[1:], "assignee", "close_reason", "cwd", "coder", "model"):
            _set_str(task, data, name)
        for name in ("role", "account", "command", "status_reason", "not_before", "isolation"):
            _set_str(task, data, name)
        _set_str(task, data, "after_children")
        if task.after_children not in ("", "close", "integrate"):
            raise ValueError(f"after_children {task.after_children!r} is not close or integrate")
        for name in ("deliver", "check", "base_branch"):
            _set_str(task, data, name)
        if task.deliver not in ("", *DELIVER_MODES):
            raise ValueError(f"deliver {task.deliver!r} is not one of {', '.join(DELIVER_MODES)}")
        for name in ("created_at", "updated_at", "closed_at", "defer_until"):
            _set_time(task, data, name)
        status = data.get("status") or "open"
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        task.status = str(status)
        priority = data.get("priority", 2)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
            raise ValueError(f"priority {priority!r} is not an integer from 0 to 4")
        task.priority = priority
        issue_type = data.get("issue_type") or "task"
        if not isinstance(issue_type, str):
            raise ValueError("issue_type is not a string")
        task.issue_type = TYPE_ALIASES.get(issue_type, issue_type)
        labels = data.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError("labels is not a list of strings")
        task.labels = list(labels)
        deps = data.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(x, dict) for x in deps):
            raise ValueError("dependencies is not a list of objects")
        task.dependencies = [Dependency.from_dict(d, task_id) for d in deps]
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not an object")
        task.metadata = metadata
        for name, kind in (
            ("max_seconds", float),
            ("max_tokens", int),
            ("max_cost", float),
            ("max_attempts", int),
        ):
            _set_limit(task, data, name, kind)
        attempts = data.get("attempts") or []
        if not isinstance(attempts, list):
            raise ValueError("attempts is not a list")
        task.attempts = attempts
        retry_base = data.get("retry_base", 0)
        if isinstance(retry_base, bool) or not isinstance(retry_base, int) or retry_base < 0:
            raise ValueError("retry_base is not a non-negative integer")
        task.retry_base = retry_base
        run = data.get("run")
        if run is not None and not isinstance(run, dict):
            raise ValueError("run is not an object")
        task.run = Run.from_dict(run) if run is not None else None
        subtasks = data.get("subtasks") or []
        if not isinstance(subtasks, list) or not all(isinstance(x, str) for x in subtasks):
            raise ValueError("subtasks is not a list of task ids")
        task.subtasks = list(subtasks)
        task.waiting_on_subtasks = data.get("waiting_on_subtasks") is True
        route = data.get("route")
        if route is not None and not isinstance(route, dict):
            raise ValueError("route is not an object")
        task.route = route
        delivery = data.get("delivery")
        if delivery is not None and not isinstance(delivery, dict):
            raise ValueError("delivery is not an object")
        task.delivery = delivery
        task.extra = {k: v for k, v in data.items() if k not in known}
        return task

    def blockers(self) -> list[str]:
        return [d.depends_on_id for d in self.dependencies if d.type in BLOCKING_TYPES]

    def parents(self) -> list[str]:
        return [d.depends_on_id for d in self.dependencies if d.type == PARENT_TYPE]


# The fields of a task, in order: the parameters of `Task()`.
TASK_FIELDS: tuple[str, ...] = Task.__init__.__code__.co_varnames[
    1 : Task.__init__.__code__.co_argcount
]


def _set_str(task: Task, data: dict[str, Any], name: str) -> None:
    value = data.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    setattr(task, name, value)


def _set_time(task: Task, data: dict[str, Any], name: str) -> None:
    value = data.get(name)
    if value in (None, ""):
        return
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a time string")
    parse_time(value)  # raises ValueError naming the value
    setattr(task, name, value)


def _set_limit(task: Task, data: dict[str, Any], name: str, kind: type) -> None:
    value = data.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a positive number")
    setattr(task, name, kind(value))


def check_priority(value: int) -> int:
    if not 0 <= value <= 4:
        raise BadInput(
            f"priority {value} is out of range",
            hint="use 0 (critical) to 4 (backlog); the default is 2",
        )
    return value
