"""Subscriptions: `[[on]]` rules in config.toml that turn an event into an action.

```toml
[[on]]
event = "task.closed"                  # an event type; "*" and "review.*" match several
where = { role = "developer" }         # all must match: role, label, data.KEY, task.FIELD
create = { role = "reviewer", title = "Review {task.id}: {task.title}",
           knowledge = ["diff", "summary"] }   # or: reopen = "origin" | "task",
                                               #     approve = "origin", run = "COMMAND"
```

One action per rule. `create` makes a task linked to the event's task (its `origin`); `reopen`
opens the event's task (or its origin) again with the event as its handoff; `approve` records
the event's task's verdict as an approval of its origin; `run` starts a command with the event
in `FLEET_EVENT` (JSON). Placeholders: `{task.FIELD}`, `{data.KEY}`, `{event.type}`.

Pure: parsing (a malformed rule is refused naming its line), matching and rendering.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from supervisor.errors import BadInput
from supervisor.events import Event

ACTIONS = ("create", "reopen", "approve", "run")
CREATE_KEYS = (
    "role",
    "title",
    "description",
    "acceptance",
    "knowledge",
    "deps",
    "labels",
    "priority",
    "requires",
)
KNOWLEDGE = ("diff", "summary")
TARGETS = ("task", "origin")
RULE_KEYS = ("event", "where", *ACTIONS)
PLACEHOLDER = re.compile(r"\{([a-z_]+)\.([A-Za-z0-9_]+)\}")
HEADER = re.compile(r"^\s*\[\[\s*on\s*\]\]")


@dataclass
class Rule:
    index: int
    line: int
    event: str
    where: dict[str, list[str]] = field(default_factory=dict)
    action: str = ""
    create: dict[str, Any] = field(default_factory=dict)
    target: str = ""  # reopen / approve: "task" or "origin"
    command: str = ""

    def name(self) -> str:
        return f"[[on]] rule {self.index + 1} (config.toml line {self.line})"


def parse_rules(text: str, raw: list[dict[str, Any]]) -> list[Rule]:
    """The rules of config.toml; BadInput naming the line of the first malformed one."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if HEADER.match(line)]
    return [_rule(i, lines[i] if i < len(lines) else 1, body) for i, body in enumerate(raw)]


def _rule(index: int, line: int, body: Any) -> Rule:
    def bad(problem: str, hint: str) -> BadInput:
        return BadInput(
            f"config.toml line {line}: [[on]] rule {index + 1}: {problem}",
            hint=hint or "fix the rule and load the file again with `fleet config load FILE`",
        )

    if not isinstance(body, dict):
        raise bad("is not a table", 'write it as [[on]] with event = "..." and an action')
    unknown = sorted(set(body) - set(RULE_KEYS))
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}", f"keys: {', '.join(RULE_KEYS)}")
    event = body.get("event")
    if not isinstance(event, str) or not re.match(r"^[a-z*][a-z0-9_.*-]*\Z", event):
        raise bad('needs event = "TYPE"', 'e.g. event = "task.closed" (or "review.*")')
    actions = [a for a in ACTIONS if a in body]
    if len(actions) != 1:
        raise bad(
            "needs exactly one action" + (f", not {', '.join(actions)}" if actions else ""),
            f"one of: {', '.join(ACTIONS)}",
        )
    rule = Rule(index, line, event, action=actions[0])
    where = body.get("where", {})
    if not isinstance(where, dict):
        raise bad("where is not a table", 'e.g. where = { role = "developer" }')
    for key, value in where.items():
        if key not in ("role", "label") and not key.startswith(("data.", "task.")):
            raise bad(f"where: unknown key {key!r}", "keys: role, label, data.KEY, task.FIELD")
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int | bool) for v in values):
            raise bad(f"where.{key} is not a value or a list of values", 'e.g. "developer"')
        rule.where[key] = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    value = body[rule.action]
    if rule.action == "create":
        if not isinstance(value, dict):
            raise bad("create is not a table", 'create = { role = "reviewer", title = "..." }')
        extra = sorted(set(value) - set(CREATE_KEYS))
        if extra:
            raise bad(f"create: unknown key {extra[0]!r}", f"keys: {', '.join(CREATE_KEYS)}")
        if not isinstance(value.get("title"), str) or not value["title"].strip():
            raise bad("create needs a title", 'title = "Review {task.id}: {task.title}"')
        knowledge = value.get("knowledge", [])
        if not isinstance(knowledge, list) or not set(knowledge) <= set(KNOWLEDGE):
            raise bad(f"create.knowledge must list some of {', '.join(KNOWLEDGE)}", "")
        for key in ("deps", "labels", "requires"):
            items = value.get(key, [])
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise bad(f"create.{key} is not a list of strings", f'{key} = ["..."]')
        for key in ("role", "title", "description", "acceptance"):
            if key in value and not isinstance(value[key], str):
                raise bad(f"create.{key} is not a string", "")
        rule.create = dict(value)
    elif rule.action in ("reopen", "approve"):
        if value not in TARGETS:
            raise bad(f'{rule.action} must be "task" or "origin", not {value!r}', "")
        rule.target = str(value)
    else:
        if not isinstance(value, str) or not value.strip():
            raise bad("run needs a command", 'run = "notify-send fleet {task.id}"')
        rule.command = value
    return rule


def matches(rule: Rule, event: Event, task: dict[str, Any] | None) -> bool:
    if not fnmatch.fnmatchcase(event.type, rule.event):
        return False
    task = task or {}
    for key, wanted in rule.where.items():
        if key == "label":
            if not set(wanted) & set(task.get("labels") or []):
                return False
            continue
        if key == "role":
            have: Any = task.get("role", "")
        elif key.startswith("data."):
            have = event.data.get(key[5:])
        else:
            have = task.get(key[5:])
        text = (
            str(have).lower() if isinstance(have, bool) else str(have if have is not None else "")
        )
        if text not in wanted:
            return False
    return True


def render(template: str, event: Event, task: dict[str, Any] | None) -> str:
    task = task or {}

    def value(match: re.Match[str]) -> str:
        scope, key = match.group(1), match.group(2)
        if scope == "task":
            found = task.get(key, "")
        elif scope == "data":
            found = event.data.get(key, "")
        elif scope == "event":
            found = {"type": event.type, "task": event.task, "time": event.time}.get(key, "")
        else:
            return match.group(0)
        return str(found)

    return PLACEHOLDER.sub(value, template)
