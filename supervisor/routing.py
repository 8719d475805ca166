"""Routing and refinement: which role a ready task runs as, and whether it is ready for it.

A task created without role or coder is routed: by the first `[[route]]` rule of the
configuration that matches it (every criterion a rule names must match: any of its labels, any of
its words in the title, its cwd under one of its path globs, any of its issue types; a rule that
names none matches every task), else by the triage role, an agent that chooses one of the
configured roles and says why. A role may say what a task needs before it starts (`ready_when`);
a task that lacks it runs first as the refine role (product-owner), whose result fills it in. The
label `refined` marks a task refined by hand.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from typing import Any

from supervisor.config import Config, RouteRule
from supervisor.model import Task

REFINED_LABEL = "refined"
TRIAGE = "triage"
REFINE = "refine"


class Decision:
    """What a ready task runs as now."""

    def __init__(
        self,
        role: str,
        purpose: str = "",
        route: dict[str, Any] | None = None,
        missing: list[str] | None = None,
        waits: str = "",
    ) -> None:
        self.role = role  # the role of this attempt
        self.purpose = purpose  # "" (the work), "triage" or "refine"
        self.route = route  # a rule's decision, recorded on the task at the claim
        self.missing: list[str] = [] if missing is None else missing  # what refinement adds
        self.waits = waits  # why the task cannot start now ("" when it can)


def decide(task: Task, config: Config) -> Decision:
    role, route = task.role, None
    if not task.role and not task.coder and task.route is None:
        found = match(task, config.route)
        if found is not None:
            index, rule = found
            role = rule.role
            route = {"role": role, "by": f"rule {index + 1}", "reason": describe(rule)}
        elif config.triage_role in config.roles:
            return Decision(config.triage_role, TRIAGE)
    settings = config.roles.get(role) if role else None
    missing = needs(task, settings.ready_when) if settings else []
    if missing and role != config.refine_role:
        if config.refine_role in config.roles:
            return Decision(config.refine_role, REFINE, route, missing)
        return Decision(
            role,
            route=route,
            missing=missing,
            waits=(
                f"waits: needs refinement ({', '.join(missing)}) before role {role}: configure"
                f" role {config.refine_role!r}, or refine it by hand and"
                f" `fleet bd update {task.id} --add-label {REFINED_LABEL}`"
            ),
        )
    return Decision(role, route=route)


def match(task: Task, rules: list[RouteRule]) -> tuple[int, RouteRule] | None:
    for index, rule in enumerate(rules):
        if not explain_rule(task, rule)[1]:
            return index, rule
    return None


def explain(task: Task, config: Config) -> list[str]:
    """One line per rule: whether it matches the task and why not, then the decision."""
    lines = []
    for index, rule in enumerate(config.route):
        _, failed = explain_rule(task, rule)
        verdict = "matches" if not failed else "does not match: " + "; ".join(failed)
        lines.append(f"rule {index + 1} ({describe(rule)}) -> {rule.role}: {verdict}")
    if not config.route:
        lines.append("no [[route]] rules are configured")
    decision = decide(task, config)
    if task.role or task.coder:
        lines.append(f"the task names its {'role' if task.role else 'coder'}: it is not routed")
    elif task.route is not None:
        lines.append(f"routed before: {task.route}")
    elif decision.purpose == TRIAGE:
        lines.append(f"no rule matches: the {decision.role} role will choose")
    elif decision.route is None:
        lines.append(
            f"no rule matches and no {config.triage_role!r} role: runs as coder {config.coder}"
        )
    if decision.purpose == REFINE:
        lines.append(
            f"needs refinement first ({', '.join(decision.missing)}): runs as {decision.role}"
        )
    elif decision.waits:
        lines.append(decision.waits)
    return lines


def explain_rule(task: Task, rule: RouteRule) -> tuple[int, list[str]]:
    """(criteria checked, the ones that failed, as reasons)."""
    failed = []
    checked = 0
    if rule.labels:
        checked += 1
        if not set(rule.labels) & set(task.labels):
            failed.append(f"no label of {', '.join(rule.labels)}")
    if rule.words:
        checked += 1
        title = task.title.lower()
        words = set(re.findall(r"[\w-]+", title)) | set(re.findall(r"[^\W_]+", title))
        if not {w.lower() for w in rule.words} & words:
            failed.append(f"no word of {', '.join(rule.words)} in the title")
    if rule.paths:
        checked += 1
        cwd = task.cwd.rstrip("/")
        globs = [os.path.expanduser(p).rstrip("/") for p in rule.paths]
        if not any(_under(cwd, g) for g in globs):
            failed.append(f"cwd {cwd or '(none)'} not under {', '.join(rule.paths)}")
    if rule.types:
        checked += 1
        if task.issue_type not in rule.types:
            failed.append(f"type {task.issue_type} not in {', '.join(rule.types)}")
    return checked, failed


def _under(cwd: str, glob: str) -> bool:
    """`cwd` matches the glob, or is the folder a `/**` glob names or below it."""
    base = glob.removesuffix("/**")
    return fnmatch.fnmatch(cwd, glob) or cwd == base or cwd.startswith(base + "/")


def describe(rule: RouteRule) -> str:
    parts = []
    for name in ("labels", "words", "paths", "types"):
        values = getattr(rule, name)
        if values:
            parts.append(f"{name} {', '.join(values)}")
    return "; ".join(parts) or "every task"


def needs(task: Task, ready_when: Sequence[str]) -> list[str]:
    """What of `ready_when` the task lacks ([] when refined by hand)."""
    if REFINED_LABEL in task.labels:
        return []
    has = {
        "description": bool(task.description.strip()),
        "acceptance": bool(task.acceptance_criteria.strip()),
        "design": bool(task.design.strip()),
        "estimate": isinstance(task.extra.get("estimated_minutes"), int),
    }
    return [field for field in ready_when if not has.get(field, False)]
