"""Budgets and prices: what a task may spend, what it has spent, and what a day has left.

A task's limits come from the task (`--max-seconds --max-tokens --max-cost`), else its role's, else
its coder's settings. Crossing `budget_warning` of a limit records a warning; crossing the limit
stops the agent and blocks the task with `budget: <limit>`. Daily ceilings (per account, and for
the whole fleet) stop new dispatches for the rest of the UTC day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coders.base import Usage
from supervisor.model import Task, parse_time

# USD per million tokens, by model-name prefix (the longest matching prefix wins). List prices
# as published by the vendors; override or extend them with `fleet config set prices.<model>.*`.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-opus": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
    "claude-sonnet": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "claude-haiku": {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25},
    "gpt-5": {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write": 0.0},
    "gemini": {"input": 1.25, "output": 10.0, "cache_read": 0.31, "cache_write": 0.0},
}


def price_of(model: str, prices: Mapping[str, Any]) -> Mapping[str, float] | None:
    """USD per million tokens by kind for `model`; `prices` holds the configured overrides."""
    table: dict[str, Mapping[str, float]] = dict(DEFAULT_PRICES)
    for prefix, price in prices.items():
        table[prefix] = price.model_dump() if hasattr(price, "model_dump") else dict(price)
    best = max((p for p in table if model.startswith(p)), key=len, default=None)
    return None if best is None else table[best]


def cost(usage: Usage, prices: Mapping[str, Any]) -> float | None:
    """The usage's cost: the CLI's own figure, else priced from the table (None: unknown model)."""
    if usage.cost_usd is not None:
        return usage.cost_usd
    price = price_of(usage.model, prices)
    if price is None:
        return None
    return (
        usage.input_tokens * price.get("input", 0.0)
        + usage.output_tokens * price.get("output", 0.0)
        + usage.cache_read_tokens * price.get("cache_read", 0.0)
        + usage.cache_write_tokens * price.get("cache_write", 0.0)
    ) / 1_000_000


@dataclass
class Limits:
    max_seconds: float | None = None
    max_tokens: int | None = None
    max_cost: float | None = None


def limits_for(task: Task, role: Any, coder: Any) -> Limits:
    """The task's own limits, else its role's, else its coder's (settings objects or None)."""

    def pick(name: str) -> Any:
        for source in (task, role, coder):
            value = getattr(source, name, None) if source is not None else None
            if value:
                return value
        return None

    return Limits(pick("max_seconds"), pick("max_tokens"), pick("max_cost"))


def spent(
    limits: Limits, seconds: float, usage: Usage, cost_usd: float
) -> list[tuple[str, float, float]]:
    """(limit name, the limit, how much is used) for every limit that is set."""
    out: list[tuple[str, float, float]] = []
    if limits.max_seconds:
        out.append(("max_seconds", limits.max_seconds, round(seconds, 1)))
    if limits.max_tokens:
        out.append(("max_tokens", limits.max_tokens, usage.total_tokens))
    if limits.max_cost:
        out.append(("max_cost", limits.max_cost, round(cost_usd, 6)))
    return out


def so_far(task: Task, prices: Mapping[str, Any]) -> tuple[float, Usage, float]:
    """Seconds, usage and cost of the task's ended attempts since its last `fleet retry`."""
    seconds, usage, cost_usd = 0.0, Usage(), 0.0
    for attempt in task.attempts[task.retry_base :]:
        seconds += float(attempt.get("seconds") or 0.0)
        used = Usage.from_dict(attempt.get("usage") or {})
        usage = plus(usage, used)
        cost_usd += cost(used, prices) or 0.0
    return seconds, usage, cost_usd


def plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        model=b.model or a.model,
    )


def day_start(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


@dataclass
class Day:
    """Usage of the current UTC day, per account and in all."""

    cost: dict[str, float]
    tokens: dict[str, int]

    @property
    def total_cost(self) -> float:
        return sum(self.cost.values())

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())


def today(
    tasks: Iterable[Task], live: Iterable[tuple[str, Usage, float | None]], now: float
) -> Day:
    """Attempts that ended today, plus the running ones ((account, usage, cost) each)."""
    start = day_start(now)
    day = Day({}, {})
    for task in tasks:
        for attempt in task.attempts:
            ended = attempt.get("ended_at")
            if not ended or parse_time(str(ended)) < start:
                continue
            usage = Usage.from_dict(attempt.get("usage") or {})
            _add(day, str(attempt.get("account") or ""), usage, usage.cost_usd)
    for account, usage, cost_usd in live:
        _add(day, account, usage, cost_usd)
    return day


def _add(day: Day, account: str, usage: Usage, cost_usd: float | None) -> None:
    day.cost[account] = day.cost.get(account, 0.0) + (cost_usd or 0.0)
    day.tokens[account] = day.tokens.get(account, 0) + usage.total_tokens


def ceiling_reached(day: Day, account: str, account_cfg: Any, config: Any) -> str:
    """Why a daily ceiling forbids new work on `account` ("" when none does)."""
    if config.daily_max_cost and day.total_cost >= config.daily_max_cost:
        return f"budget: the fleet's daily_max_cost {config.daily_max_cost:g} USD is spent"
    if config.daily_max_tokens and day.total_tokens >= config.daily_max_tokens:
        return f"budget: the fleet's daily_max_tokens {config.daily_max_tokens} are used"
    if account_cfg is None:
        return ""
    cost_cap, token_cap = account_cfg.daily_max_cost, account_cfg.daily_max_tokens
    if cost_cap and day.cost.get(account, 0.0) >= cost_cap:
        return f"budget: account {account}'s daily_max_cost {cost_cap:g} USD is spent"
    if token_cap and day.tokens.get(account, 0) >= token_cap:
        return f"budget: account {account}'s daily_max_tokens {token_cap} are used"
    return ""


def check(
    task: Task,
    limits: Limits,
    running: tuple[float, Usage],
    prices: Mapping[str, Any],
    warning: float,
    warned: set[str],
) -> tuple[str, list[tuple[str, float]]]:
    """A running attempt against its task's budgets: (`over_budget: ...` past a hard limit, else
    "", the limits newly past the `warning` fraction with the fraction used). A budget covers the
    task's attempts since its last `fleet retry`, the running one (`running`: its seconds and
    usage so far) included. The names in `warnings` are added to `warned`."""
    seconds, usage, spent_usd = so_far(task, prices)
    usage = plus(usage, running[1])
    spent_usd += cost(running[1], prices) or 0.0
    seconds += running[0]
    warnings: list[tuple[str, float]] = []
    for name, limit, used in spent(limits, seconds, usage, spent_usd):
        if used > limit:
            return f"over_budget: budget: {name} {limit:g} (used {used:.4g})", warnings
        if used >= warning * limit and name not in warned:
            warned.add(name)
            warnings.append((name, used / limit))
    return "", warnings


def task_limits(config: Any, task: Task | None, coder: str) -> Limits:
    """The limits of `task` under `config` (its role's and its coder's settings)."""
    if task is None:
        return Limits()
    role = config.roles.get(task.role) if task.role else None
    return limits_for(task, role, config.coders.get(coder))


def has_ceilings(config: Any) -> bool:
    """Does the configuration set a daily ceiling (the fleet's or an account's)?"""
    return bool(
        config.daily_max_cost
        or config.daily_max_tokens
        or any(a.daily_max_cost or a.daily_max_tokens for a in config.accounts.values())
    )


def overrun(
    config: Any,
    limits: Limits,
    started_at: float,
    idle_since: float,
    now: float,
    retries: str = "",
) -> str:
    """`timed_out: ...` past the configured run time (when the task sets no `max_seconds`
    budget of its own), `stalled: ...` after `stall_seconds` without output, `overloaded: ...`
    when all it printed that long is the CLI's retry message (`retries`), else ""."""
    if not limits.max_seconds and now - started_at > config.max_seconds:
        return f"timed_out: ran longer than {config.max_seconds:g} s"
    if now - idle_since > config.stall_seconds and retries:  # only "reconnecting..." lines
        return f"overloaded: only retries for {config.stall_seconds:g} s ({retries[:120]})"
    if now - idle_since > config.stall_seconds:
        return f"stalled: no output for {config.stall_seconds:g} s"
    return ""
