"""Decomposition: the subtasks an agent's result may list, checked whole before any is created.

An agent (any coder, the shell coder's command too) may end its result with
`"subtasks": [{"title", "description", "acceptance", "role" | "coder", "command", "deps"}]`,
where `deps` holds 0-based indexes into that list (or ids of tasks the store already has). The
list is refused whole, never in part, when any entry is malformed, when its dependencies name an
entry that does not exist or form a cycle, or when it goes past `max_children` or `max_depth`.

Accepted subtasks become children of the task (beads' `parent-child` edge, ids `<parent>.N`); the
task waits for them (blocked, with the reason) and, once every child is closed, either closes or
runs once more to integrate their work (`after_children`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from supervisor.lifecycle import WAITING_FOR_SUBTASKS
from supervisor.model import ID_PATTERN, PARENT_TYPE, Dependency, Task, iso

AFTER_CHILDREN = ("close", "integrate")
WAITING = WAITING_FOR_SUBTASKS  # the reason a task waiting for its subtasks is blocked with
TEXT_LIMIT = 64 * 1024  # characters of a subtask's description or acceptance criteria


class Refused(Exception):
    """The subtasks cannot be created; the message says why, for the agent and the person."""


class Subtask:
    def __init__(
        self,
        title: str,
        description: str = "",
        acceptance: str = "",
        role: str = "",
        coder: str = "",
        command: str = "",
        deps: list[int] | None = None,
        dep_ids: list[str] | None = None,
    ) -> None:
        self.title = title
        self.description = description
        self.acceptance = acceptance
        self.role = role
        self.coder = coder
        self.command = command
        self.deps: list[int] = [] if deps is None else deps
        self.dep_ids: list[str] = [] if dep_ids is None else dep_ids


def parse(
    raw: object,
    *,
    parent: Task,
    max_children: int,
    max_depth: int,
    coders: Collection[str],
    roles: Collection[str],
    exists: Callable[[str], bool],
) -> list[Subtask]:
    """The subtasks of a result, or Refused naming the first problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Refused("subtasks is not a list of objects")
    if not raw:
        return []
    if len(raw) > max_children:
        raise Refused(f"{len(raw)} subtasks are more than max_children ({max_children})")
    level = depth(parent.id) + 1
    if level > max_depth:
        raise Refused(
            f"a subtask of {parent.id} would be {level} levels deep, past max_depth ({max_depth})"
        )
    subtasks = [_entry(i, item, len(raw), coders, roles, exists) for i, item in enumerate(raw)]
    cycle = _cycle(subtasks)
    if cycle:
        path = " -> ".join(str(i) for i in cycle)
        raise Refused(f"the subtasks' deps form a cycle: {path}")
    return subtasks


def depth(task_id: str) -> int:
    """How many levels below a top-level task `task_id` is (`fl-ab.1.2` is 2)."""
    return task_id.count(".")


def _entry(
    i: int,
    item: object,
    count: int,
    coders: Collection[str],
    roles: Collection[str],
    exists: Callable[[str], bool],
) -> Subtask:
    where = f"subtask {i}"
    if not isinstance(item, dict):
        raise Refused(f"{where} is not an object")
    unknown = sorted(set(item) - {*_STRINGS, "deps", "acceptance_criteria"})
    if unknown:
        raise Refused(f"{where} has unknown field {unknown[0]!r} (known: {', '.join(_KNOWN)})")
    values: dict[str, str] = {}
    for name in _STRINGS:
        value = item.get(name, "")
        if not isinstance(value, str):
            raise Refused(f"{where}: {name} is not a string")
        values[name] = value
    if not values["acceptance"] and isinstance(item.get("acceptance_criteria"), str):
        values["acceptance"] = item["acceptance_criteria"]
    title = values["title"].strip()
    if not title:
        raise Refused(f"{where} has no title")
    if len(title) > 500 or "\n" in title or "\r" in title:
        raise Refused(f"{where}: the title must be one line of at most 500 characters")
    for name in ("description", "acceptance", "command"):
        if len(values[name]) > TEXT_LIMIT:
            raise Refused(f"{where}: {name} is longer than {TEXT_LIMIT} characters")
    if values["role"] and values["role"] not in roles:
        known = ", ".join(sorted(roles)) or "none configured"
        raise Refused(f"{where}: unknown role {values['role']!r} (roles: {known})")
    if values["coder"] and values["coder"] not in coders:
        raise Refused(f"{where}: unknown coder {values['coder']!r} (coders: {', '.join(coders)})")
    if values["coder"] == "shell" and not values["command"].strip():
        raise Refused(f"{where}: a shell subtask needs a command")
    deps, dep_ids = _deps(where, i, item.get("deps", []), count, exists)
    return Subtask(
        title,
        values["description"],
        values["acceptance"],
        values["role"],
        values["coder"],
        values["command"],
        deps,
        dep_ids,
    )


_STRINGS = ("title", "description", "acceptance", "role", "coder", "command")
_KNOWN = (*_STRINGS, "deps")


def _deps(
    where: str, i: int, raw: object, count: int, exists: Callable[[str], bool]
) -> tuple[list[int], list[str]]:
    if not isinstance(raw, list):
        raise Refused(f"{where}: deps is not a list")
    indexes: list[int] = []
    ids: list[str] = []
    for dep in raw:
        if isinstance(dep, bool):
            raise Refused(f"{where}: dep {dep!r} is neither an index nor a task id")
        if isinstance(dep, int):
            if not 0 <= dep < count:
                raise Refused(
                    f"{where} depends on subtask {dep}, which does not exist "
                    f"(indexes run from 0 to {count - 1})"
                )
            if dep == i:
                raise Refused(f"{where} depends on itself")
            indexes.append(dep)
        elif isinstance(dep, str) and ID_PATTERN.match(dep):
            if not exists(dep):
                raise Refused(f"{where} depends on {dep}, which is not in the store")
            ids.append(dep)
        else:
            raise Refused(f"{where}: dep {dep!r} is neither an index nor a task id")
    return indexes, ids


def _cycle(subtasks: list[Subtask]) -> list[int]:
    """A cycle among the subtasks' index deps, as the path that closes it ([] when none)."""
    state: dict[int, int] = {}  # 1: on the path, 2: done
    path: list[int] = []

    def visit(i: int) -> list[int]:
        state[i] = 1
        path.append(i)
        for j in subtasks[i].deps:
            if state.get(j) == 1:
                return [*path[path.index(j) :], j]
            if j not in state:
                found = visit(j)
                if found:
                    return found
        path.pop()
        state[i] = 2
        return []

    for i in range(len(subtasks)):
        if i not in state:
            found = visit(i)
            if found:
                return found
    return []


def children(
    parent: Task, subtasks: list[Subtask], taken: Callable[[str], bool], now: float
) -> list[Task]:
    """The tasks to create for `subtasks`: ids `<parent>.N` after the ones taken, the parent-child
    edge, and `blocks` edges for their deps."""
    ids: list[str] = []
    n = 1
    while len(ids) < len(subtasks):
        candidate = f"{parent.id}.{n}"
        if not taken(candidate):
            ids.append(candidate)
        n += 1
    stamp = iso(now)
    out = []
    for child_id, sub in zip(ids, subtasks, strict=True):
        deps = [Dependency(child_id, parent.id, PARENT_TYPE, stamp)]
        deps += [Dependency(child_id, ids[j], "blocks", stamp) for j in sub.deps]
        deps += [Dependency(child_id, other, "blocks", stamp) for other in sub.dep_ids]
        out.append(
            Task(
                id=child_id,
                title=sub.title,
                description=sub.description,
                acceptance_criteria=sub.acceptance,
                priority=parent.priority,
                dependencies=deps,
                created_at=stamp,
                updated_at=stamp,
                cwd=parent.cwd,
                role=sub.role,
                coder=sub.coder,
                command=sub.command,
            )
        )
    return out


def summary(parent: Task, lookup: Callable[[str], Task | None]) -> list[str]:
    """What each child produced, for the parent's integrating attempt."""
    out = []
    for child_id in parent.subtasks:
        child = lookup(child_id)
        if child is None:
            continue
        results = [a for a in child.attempts if a.get("summary")]
        text = results[-1]["summary"] if results else child.close_reason
        out.append(f"### {child.id}: {child.title} ({child.status})\n{text}".rstrip())
    return out


SUBTASK_CONTRACT = (
    "To split the work, add to the result a list of subtasks instead of doing it all:\n"
    '"subtasks": [{"title": "...", "description": "...", "acceptance": "...", '
    '"role": "..." or "coder": "...", "command": "... (shell only)", "deps": [0]}]\n'
    "deps are 0-based indexes of other entries of that list (or ids of existing tasks). "
    "Set status to done: this task then waits until its subtasks close."
)
