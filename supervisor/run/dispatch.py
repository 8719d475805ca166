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

from supervisor import accounts, budgets, lifecycle, routing
from supervisor.config import Config
from supervisor.model import Run, Task, iso
from supervisor.run.attempt import Attempt
from supervisor.run.ops import Op
from supervisor.run.process import new_token
from supervisor.store import quarantine
from supervisor.store.store import Snapshot, Store


@dataclass
class Pick:
    task: Task
    coder: str
    model: str
    account: str  # "" = the supervisor's own environment
    decision: routing.Decision | None = None  # the role it runs as, and why


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
    per_role = _per_role(snap, fleet)
    for task_id in ready_ids:
        if len(picks) >= free:
            break
        task = snap.get(task_id)
        if task is None or task.run is not None:
            continue
        decision = routing.decide(task, config)
        if decision.waits:
            waiting[task_id] = decision.waits
            continue
        role = config.roles.get(decision.role) if decision.role else None
        cap = role.max_concurrent if role else None
        if cap and per_role.get(decision.role, 0) >= cap:
            waiting[task_id] = f"waits: role {decision.role} runs {cap} at once"
            continue
        own = task.coder if not decision.purpose else ""  # preparing it: the role's coder
        coder = own or (role.coder if role else "") or config.coder
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
        pinned = role.account if role else ""
        account, why = pick_account(task, coder, pinned, fleet, per_account, bool(decision.purpose))
        if why:
            waiting[task_id] = why
            continue
        per_coder[coder] = per_coder.get(coder, 0) + 1
        per_account[account] = per_account.get(account, 0) + 1
        per_role[decision.role] = per_role.get(decision.role, 0) + 1
        own_model = task.model if not decision.purpose else ""
        model = own_model or (role.model if role else "") or (settings.model if settings else "")
        picks.append(Pick(task, coder, model, account, decision))
    return picks, waiting


def _per_role(snap: Snapshot, fleet: Fleet) -> dict[str, int]:
    """Running agents by role, when a role caps its agents (else nothing is counted)."""
    if not any(r.max_concurrent for r in fleet.config.roles.values()):
        return {}
    counts: dict[str, int] = {}
    for task_id in fleet.running:
        task = snap.get(task_id)
        role = ((task.run.role if task.run else "") or task.role) if task is not None else ""
        if role:
            counts[role] = counts.get(role, 0) + 1
    return counts


def pick_account(
    task: Task,
    coder: str,
    role_account: str,
    fleet: Fleet,
    per_account: Mapping[str, int],
    preparing: bool = False,
) -> tuple[str, str]:
    """(account, "") to run on, or ("", why the task waits)."""
    config = fleet.config
    pinned = (task.account if not preparing else "") or role_account
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
        role = config.roles.get(task.role) if task.role else None
        if role and role.accounts:  # the role's accounts only
            candidates = [n for n in candidates if n in role.accounts]
            if not candidates:
                return "", f"waits: none of role {task.role}'s accounts is for {coder}"
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


def claim_op(
    pick: Pick, actor: str, host: str, pid: int, now: float, token: str | None = None
) -> Op:
    """Flip the task from open to in_progress for this supervisor: the exactly-once claim."""
    task = pick.task
    decision = pick.decision
    run = Run(
        lifecycle.next_attempt(task),
        actor=actor,
        host=host,
        supervisor_pid=pid,
        coder=pick.coder,
        model=pick.model,
        account=pick.account,
        claimed_at=iso(now),
        started_at=iso(now),
        token=token or new_token(),  # known before the agent starts, so it can be found
        role=decision.role if decision is not None else "",
        purpose=decision.purpose if decision is not None else "",
        missing=list(decision.missing) if decision is not None and decision.purpose else None,
    )

    def change(fresh: Task) -> bool:
        if not lifecycle.claim(fresh, Run.from_dict(run.to_dict()), now):
            return False
        if decision is not None and decision.route is not None and not fresh.role:
            fresh.role, fresh.route = decision.route["role"], dict(decision.route)
        return True

    return Op(task.id, "claimed", change)


def today(
    store: Store, config: Config, running: Mapping[str, Attempt], spent: list[Any], now: float
) -> budgets.Day | None:
    """What today's attempts used, by account, when a daily ceiling is set (else None): the
    ended ones from the store, the running ones, and `spent` (those ended in this tick)."""
    if not budgets.has_ceilings(config):
        return None
    prices = config.prices
    live = [(a.account, a.usage, budgets.cost(a.usage, prices)) for a in running.values()]
    tasks = [Task.from_dict(b) for b in store.cache.updated_since(budgets.day_start(now))]
    return budgets.today(tasks, live + spent, now)
