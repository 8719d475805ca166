"""The usage ledger: every attempt's tokens, cost and time, as recorded on its task, added up.

`fleet usage --by task|coder|model|account|role|day [--since DATE]` answers "what did this cost"
for any slice; the sums are exactly the sums of the attempts' records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from supervisor.model import Task, parse_time

GROUPS = ("task", "coder", "model", "account", "role", "day")
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@dataclass
class Line:
    key: str
    attempts: int = 0
    successes: int = 0
    tasks: set[str] = field(default_factory=set)
    succeeded_tasks: set[str] = field(default_factory=set)
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KINDS, 0))
    cost_usd: float = 0.0
    seconds: float = 0.0

    def add(self, task: Task, attempt: dict[str, Any]) -> None:
        usage = attempt.get("usage") or {}
        self.attempts += 1
        self.tasks.add(task.id)
        if attempt.get("outcome") == "success":
            self.successes += 1
            self.succeeded_tasks.add(task.id)
        for kind in TOKEN_KINDS:
            self.tokens[kind] += int(usage.get(kind) or 0)
        self.cost_usd += float(usage.get("cost_usd") or 0.0)
        self.seconds += float(attempt.get("seconds") or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "attempts": self.attempts,
            "tasks": len(self.tasks),
            "successes": self.successes,
            "success_rate": round(self.successes / self.attempts, 4) if self.attempts else None,
            **self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "seconds": round(self.seconds, 3),
            "cost_per_success_usd": (
                round(self.cost_usd / len(self.succeeded_tasks), 6)
                if self.succeeded_tasks
                else None
            ),
        }


def attempt_day(attempt: dict[str, Any]) -> str:
    stamp = attempt.get("ended_at") or attempt.get("started_at") or ""
    return str(stamp)[:10]


def _key(by: str, task: Task, attempt: dict[str, Any]) -> str:
    if by == "task":
        return task.id
    if by == "day":
        return attempt_day(attempt)
    if by == "role":
        return task.role
    if by == "model":
        return str(attempt.get("model") or (attempt.get("usage") or {}).get("model") or "")
    return str(attempt.get(by) or "")


def aggregate(tasks: Iterable[Task], by: str = "coder", since: float | None = None) -> list[Line]:
    """One line per value of `by`, plus nothing else; attempts before `since` are left out."""
    lines: dict[str, Line] = {}
    for task in tasks:
        for attempt in task.attempts:
            if since is not None:
                stamp = attempt.get("ended_at") or attempt.get("started_at")
                if not stamp or parse_time(str(stamp)) < since:
                    continue
            key = _key(by, task, attempt)
            lines.setdefault(key, Line(key)).add(task, attempt)
    return sorted(lines.values(), key=lambda line: (-line.cost_usd, line.key))


def total(lines: Iterable[Line]) -> Line:
    out = Line("total")
    for line in lines:
        out.attempts += line.attempts
        out.successes += line.successes
        out.tasks |= line.tasks
        out.succeeded_tasks |= line.succeeded_tasks
        for kind in TOKEN_KINDS:
            out.tokens[kind] += line.tokens[kind]
        out.cost_usd += line.cost_usd
        out.seconds += line.seconds
    return out
