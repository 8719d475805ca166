"""Scorecards: how well each role, coder, model or account works, from the attempts on record.

Computed from the attempts on record (`supervisor.store.attempts` aggregates them in SQL). An
attempt counts for the card of its coder, model, account (from its record) or its task's role,
when it ended at or after the window's start.

- throughput: tasks closed (a closed task counts for the card of its last attempt)
- reliability: success rate of attempts, retries (attempts after a task's first), stalls,
  timeouts, failures (any outcome other than success, rate_limited, overloaded, killed)
- quality: review verdicts and checks at merge, where an attempt's record holds them
  (`review.verdict` or `verdict`; `merge.checks` or `checks`), partial results, and reopens (a
  task tried again after a successful attempt)
- efficiency: seconds, tokens and USD per closed task (all of the card's attempts, divided by
  its closed tasks)
- collaboration: handoffs accepted (a task that depended on one of the card's closed tasks
  closed itself), open questions handed on
- a one-line verdict
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUPS = ("role", "coder", "model", "account")
NOT_FAILURES = {"success", "rate_limited", "overloaded", "killed"}  # not the agent's fault
APPROVED = {"approve", "approved", "accept", "accepted", "lgtm", "pass", "passed"}
REJECTED = {"reject", "rejected", "changes_requested", "request_changes", "fail", "failed"}
MIN_ATTEMPTS = 5  # fewer than this: too few to judge
BLOCKING = {"blocks", "conditional-blocks", "waits-for"}  # a handoff: its result was waited for


@dataclass
class Card:
    key: str
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    stalls: int = 0
    timeouts: int = 0
    closed: int = 0
    partial: int = 0
    reopened: int = 0
    approved: int = 0
    rejected: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    handoffs_accepted: int = 0
    questions: int = 0
    seconds: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    task_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        per = self.closed or None
        return {
            "key": self.key,
            "throughput": {
                "closed": self.closed,
                "attempts": self.attempts,
                "tasks": self.task_count,
            },
            "reliability": {
                "success_rate": _ratio(self.successes, self.attempts),
                "successes": self.successes,
                "failures": self.failures,
                "retries": self.retries,
                "stalls": self.stalls,
                "timeouts": self.timeouts,
            },
            "quality": {
                "approved": self.approved,
                "rejected": self.rejected,
                "checks_passed": self.checks_passed,
                "checks_failed": self.checks_failed,
                "partial": self.partial,
                "reopened": self.reopened,
                "reopen_rate": _ratio(self.reopened, self.closed + self.reopened),
            },
            "efficiency": {
                "seconds": round(self.seconds, 3),
                "tokens": self.tokens,
                "cost_usd": round(self.cost_usd, 6),
                "seconds_per_closed": round(self.seconds / per, 3) if per else None,
                "tokens_per_closed": round(self.tokens / per, 1) if per else None,
                "cost_per_closed_usd": round(self.cost_usd / per, 6) if per else None,
            },
            "collaboration": {
                "handoffs_accepted": self.handoffs_accepted,
                "questions": self.questions,
            },
            "verdict": verdict(self),
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def verdict(card: Card) -> str:
    """One line: good, fair or poor, and why."""
    if card.attempts < MIN_ATTEMPTS:
        return f"too few attempts to judge ({card.attempts})"
    rate = card.successes / card.attempts
    reviewed = card.approved + card.rejected
    approval = card.approved / reviewed if reviewed else None
    issues = []
    if card.stalls:
        issues.append(f"{card.stalls} stalls")
    if card.timeouts:
        issues.append(f"{card.timeouts} timeouts")
    if card.retries:
        issues.append(f"{card.retries} retries")
    if card.rejected:
        issues.append(f"{card.rejected} rejected in review")
    if card.checks_failed:
        issues.append(f"{card.checks_failed} failed checks")
    if card.reopened:
        issues.append(f"{card.reopened} reopened")
    cost = f", ${card.cost_usd / card.closed:.2f} per closed task" if card.closed else ""
    grade = "good" if rate >= 0.8 and (approval is None or approval >= 0.8) else "fair"
    if rate < 0.5 or (approval is not None and approval < 0.5):
        grade = "poor"
    worst = f"; {', '.join(issues[:2])}" if issues and grade != "good" else ""
    return f"{grade}: {rate:.0%} of {card.attempts} attempts succeeded{cost}{worst}"
