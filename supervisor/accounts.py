"""Accounts: which credentials an agent runs with, which are usable now, and why not.

An account is a table in the configuration (`[accounts.NAME]`): a coder, a config dir, the name of
the variable holding its key (never the key) and of the agent's variable it goes in, extra
variables, a concurrency cap and daily ceilings. What the supervisor learns about it (limited until
a reset, utilization near its limit) is state, kept in the store's tree as `accounts/<name>.json`
and committed with the attempt that taught it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from supervisor.model import iso, parse_time

STATE_DIR = "accounts"
LIMIT_BACKOFF = 60.0  # an account limited without a reset time rests this long, doubling
LIMIT_BACKOFF_MAX = 3600.0


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coder: str = Field(description="the coder whose agents use this account")
    config_dir: str = Field("", description="CLAUDE_CONFIG_DIR / CODEX_HOME / HOME / XDG dirs")
    key_env: str = Field("", description="the variable whose value becomes the agent's key")
    key_as: str = Field("", description="the agent's variable the key goes in ('' = the coder's)")
    env: dict[str, str] = Field(default_factory=dict, description="extra variables for its agents")
    max_concurrent: int | None = Field(None, ge=1, description="its agents at once")
    disabled: bool = Field(False, description="never dispatch to it")
    daily_max_cost: float | None = Field(None, gt=0, description="USD per UTC day")
    daily_max_tokens: int | None = Field(None, gt=0, description="tokens per UTC day")


@dataclass
class State:
    """What the supervisor knows of an account's limits."""

    limited_until: str = ""  # rejected by a rate or usage limit until then
    limit_reason: str = ""
    limits_in_a_row: int = 0  # consecutive limits, for the backoff when no reset is given
    utilization: float | None = None  # the newest early warning, 0..1
    utilization_resets_at: str = ""
    utilization_at: str = ""

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> State:
        if not data:
            return cls()
        raw = json.loads(data)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def state_path(name: str) -> str:
    return f"{STATE_DIR}/{name}.json"


def limited(state: State, now: float) -> bool:
    return bool(state.limited_until) and parse_time(state.limited_until) > now


def near_limit(state: State, threshold: float, now: float) -> bool:
    """An early warning at or above `threshold` that has not reset yet."""
    if state.utilization is None or state.utilization < threshold:
        return False
    if state.utilization_resets_at:
        return parse_time(state.utilization_resets_at) > now
    return True


def mark_limited(state: State, now: float, resets_at: float | None, reason: str) -> State:
    streak = state.limits_in_a_row + 1
    until = (
        resets_at
        if resets_at and resets_at > now
        else now + min(LIMIT_BACKOFF_MAX, LIMIT_BACKOFF * 2 ** (streak - 1))
    )
    return State(
        limited_until=iso(until),
        limit_reason=reason,
        limits_in_a_row=streak,
        utilization=state.utilization,
        utilization_resets_at=state.utilization_resets_at,
        utilization_at=state.utilization_at,
    )


def mark_ok(state: State) -> State:
    """A successful attempt: the account's limit streak is over."""
    return State(
        utilization=state.utilization,
        utilization_resets_at=state.utilization_resets_at,
        utilization_at=state.utilization_at,
    )


def note_utilization(
    state: State, utilization: float, resets_at: float | None, now: float
) -> State:
    return State(
        limited_until=state.limited_until,
        limit_reason=state.limit_reason,
        limits_in_a_row=state.limits_in_a_row,
        utilization=utilization,
        utilization_resets_at=iso(resets_at) if resets_at else "",
        utilization_at=iso(now),
    )


def agent_env(account: Account, key_target: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables an account gives its agents; KeyError naming a missing key variable."""
    env = dict(account.env)
    if account.key_env:
        if account.key_env not in environ:
            raise KeyError(account.key_env)
        if key_target:
            env[key_target] = environ[account.key_env]
    return env


def config_dir(account: Account) -> Path | None:
    return Path(os.path.expanduser(account.config_dir)) if account.config_dir else None


def describe(state: State, account: Account, threshold: float, now: float) -> dict[str, Any]:
    """The account's state for `fleet accounts`: available, limited, near its limit, disabled."""
    if account.disabled:
        status = "disabled"
    elif limited(state, now):
        status = f"limited until {state.limited_until}"
    elif near_limit(state, threshold, now):
        status = f"near its limit ({state.utilization:.0%})"
    else:
        status = "available"
    return {"status": status, **asdict(state)}


# -- the bookkeeping after an attempt --------------------------------------------------------------


def after_warning(
    state: State, utilization: float, resets_at: float | None, threshold: float, now: float
) -> State | None:
    """The new state after an early warning, if it must be recorded: it crossed `threshold`
    (either way), or it is the account's first."""
    was = near_limit(state, threshold, now)
    new = note_utilization(state, utilization, resets_at, now)
    if near_limit(new, threshold, now) != was or not state.utilization_at:
        return new
    return None


def after_attempt(
    state: State, outcome: str, reason: str, resets_at: float | None, now: float
) -> tuple[State, str] | None:
    """The new state and its event after an attempt of the account ended, if anything changed:
    a rate limit marks it limited, a success ends its streak of limits."""
    if outcome == "rate_limited":
        return mark_limited(state, now, resets_at, reason or "rate limited"), "account_limited"
    if outcome == "success" and state.limits_in_a_row:
        return mark_ok(state), "account_ok"
    return None


def other_for(accounts: Mapping[str, Account], name: str, coder: str) -> str:
    """Another account (enabled, of the same coder) that could take a task `name` got limited
    on: the limited account's name if there is one, else ""."""
    if any(n != name and a.coder == coder and not a.disabled for n, a in accounts.items()):
        return name
    return ""
