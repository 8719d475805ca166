"""Dispatch: which ready tasks start now, on which account, and why the others wait.

Ready tasks are taken by priority, then age, up to `max_concurrent` and the per-coder caps. A task
runs on its pinned account (its own, else its role's), else on the available account of its coder
with the most headroom; with no account configured for its coder it runs with the supervisor's own
environment. An account is unavailable while disabled, limited until a reset, above
`limit_threshold` utilization, at its own concurrency cap, or past a daily ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor import accounts, budgets
from supervisor.config import Config
from supervisor.model import Task, iso
from supervisor.run.attempt import Attempt
from supervisor.run.ops import Op
from supervisor.run.process import new_token
from supervisor.store import quarantine
from supervisor.store.store import Snapshot


@dataclass
class Pick:
    task: Task
    coder: str
    model: str
    account: str  # "" = the supervisor's own environment


@dataclass
class Fleet:
    """What dispatch needs to know about the fleet right now."""

    config: Config
    running: Mapping[str, Attempt]
    states: Mapping[str, accounts.State]
    day: budgets.Day | None
    environ: Mapping[str, str]
    now: float
    quarantined: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # subject -> record


def choose(snap: Snapshot, ready_ids: list[str], fleet: Fleet) -> tuple[list[Pick], dict[str, str]]:
    """The tasks to start now, and why each ready task left out waits (by id)."""
    config = fleet.config
    free = config.max_concurrent - len(fleet.running)
    per_coder: dict[str, int] = {}
    per_account: dict[str, int] = {}
    for attempt in fleet.running.values():
        per_coder[attempt.coder.name] = per_coder.get(attempt.coder.name, 0) + 1
        per_account[attempt.account] = per_account.get(attempt.account, 0) + 1
    picks: list[Pick] = []
    waiting: dict[str, str] = {}
    for task_id in ready_ids:
        if len(picks) >= free:
            break
        task = snap.get(task_id)
        if task is None or task.run is not None:
            continue
        role = config.roles.get(task.role) if task.role else None
        coder = task.coder or (role.coder if role else "") or config.coder
        settings = config.coders.get(coder)
        held = quarantine.blocks(dict(fleet.quarantined), task.id, task.role, coder, "")
        if held:
            waiting[task_id] = held
            continue
        if (
            settings
            and settings.max_concurrent
            and per_coder.get(coder, 0) >= settings.max_concurrent
        ):
            continue
        account, why = pick_account(task, coder, role.account if role else "", fleet, per_account)
        if why:
            waiting[task_id] = why
            continue
        per_coder[coder] = per_coder.get(coder, 0) + 1
        per_account[account] = per_account.get(account, 0) + 1
        model = task.model or (role.model if role else "") or (settings.model if settings else "")
        picks.append(Pick(task, coder, model, account))
    return picks, waiting


def pick_account(
    task: Task, coder: str, role_account: str, fleet: Fleet, per_account: Mapping[str, int]
) -> tuple[str, str]:
    """(account, "") to run on, or ("", why the task waits)."""
    config = fleet.config
    pinned = task.account or role_account
    if pinned:
        if pinned not in config.accounts:
            return "", f"waits: account {pinned!r} is not configured (`fleet accounts add`)"
        if config.accounts[pinned].coder != coder:
            return (
                "",
                f"waits: account {pinned!r} is for {config.accounts[pinned].coder}, not {coder}",
            )
        candidates = [pinned]
    else:
        candidates = sorted(n for n, a in config.accounts.items() if a.coder == coder)
    if not candidates:
        ceiling = budgets.ceiling_reached(fleet.day, "", None, config) if fleet.day else ""
        return ("", f"waits: {ceiling}") if ceiling else ("", "")
    reasons = {name: unavailable(name, fleet, per_account) for name in candidates}
    free = [name for name, why in reasons.items() if not why]
    if not free:
        return "", "waits: " + "; ".join(f"{name} {why}" for name, why in reasons.items())

    def headroom(name: str) -> tuple[float, int, str]:
        state = fleet.states.get(name) or accounts.State()
        return (state.utilization or 0.0, per_account.get(name, 0), name)

    return min(free, key=headroom), ""


def unavailable(name: str, fleet: Fleet, per_account: Mapping[str, int]) -> str:
    """Why account `name` takes no new work now ("" when it does)."""
    account = fleet.config.accounts[name]
    state = fleet.states.get(name) or accounts.State()
    if account.disabled:
        return "is disabled"
    if f"account:{name}" in fleet.quarantined:
        return "is quarantined"
    if account.key_env and account.key_env not in fleet.environ:
        return f"has no key: {account.key_env} is not set for the supervisor"
    if accounts.limited(state, fleet.now):
        return f"is limited until {state.limited_until}"
    if accounts.near_limit(state, fleet.config.limit_threshold, fleet.now):
        return f"is near its limit ({(state.utilization or 0):.0%})"
    if account.max_concurrent and per_account.get(name, 0) >= account.max_concurrent:
        return f"runs {account.max_concurrent} agents already"
    if fleet.day is not None:
        return budgets.ceiling_reached(fleet.day, name, account, fleet.config)
    return ""


def claim_op(pick: Pick, actor: str, host: str, pid: int, now: float) -> Op:
    """Flip the task from open to in_progress for this supervisor: the exactly-once claim."""
    task = pick.task
    run = {
        "attempt": len(task.attempts) + 1,
        "actor": actor,
        "host": host,
        "supervisor_pid": pid,
        "coder": pick.coder,
        "model": pick.model,
        "account": pick.account,
        "claimed_at": iso(now),
        "started_at": iso(now),
        "token": new_token(),  # known before the agent starts, so it can always be found
    }

    def change(fresh: Task) -> bool:
        if fresh.status != "open" or fresh.run is not None:
            return False  # someone else has it, or it changed: not ours
        fresh.status, fresh.assignee, fresh.run = "in_progress", actor, dict(run)
        fresh.status_reason, fresh.updated_at = "", iso(now)
        return True

    return Op(task.id, "claimed", change)
