"""What blocks what, and cycles, over the dependency graph (beads' rules). Pure.

Works on `Node`s, the few fields blocking needs, so `fleet bd blocked` can explain every blocked
task at 10,000 tasks without building full task objects. Readiness itself is one SQL query over
the cache (`Cache.ready`), by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from supervisor.model import Record, Task, parse_time


class Node(Record):
    """What readiness needs of a task."""

    def __init__(
        self,
        id: str,
        status: str,
        priority: int,
        created_ts: float,
        blockers: list[str] | None = None,
        parents: list[str] | None = None,
    ) -> None:
        self.id = id
        self.status = status
        self.priority = priority
        self.created_ts = created_ts  # created_at as epoch seconds (0 when unknown)
        self.blockers: list[str] = [] if blockers is None else blockers  # blocking dependencies
        self.parents: list[str] = [] if parents is None else parents  # parent-child dependencies

    @classmethod
    def of(cls, task: Task) -> Node:
        return cls(
            id=task.id,
            status=task.status,
            priority=task.priority,
            created_ts=parse_time(task.created_at) if task.created_at else 0.0,
            blockers=task.blockers(),
            parents=task.parents(),
        )


def _resolved(status: str | None) -> bool:
    # A target the store does not have (an external reference, a pruned task) does not block.
    return status is None or status in ("closed", "pinned")


def blocked_by(nodes: Mapping[str, Node]) -> dict[str, list[str]]:
    """Every task that is blocked -> what blocks it (open blockers, or its blocked parent).

    beads: a task that is not closed or pinned is blocked when a blocking dependency's target is
    unresolved, or when its parent (parent-child) is itself blocked, transitively.
    """
    direct: dict[str, list[str]] = {}
    for node in nodes.values():
        if node.status in ("closed", "pinned"):
            continue
        open_blockers = [
            b for b in node.blockers if not _resolved(nodes[b].status if b in nodes else None)
        ]
        if open_blockers:
            direct[node.id] = open_blockers
    children: dict[str, list[str]] = {}
    for node in nodes.values():
        for parent in node.parents:
            children.setdefault(parent, []).append(node.id)
    result = dict(direct)
    frontier = list(direct)
    while frontier:
        parent = frontier.pop()
        for child in children.get(parent, ()):
            if child in result or nodes[child].status in ("closed", "pinned"):
                continue
            result[child] = [parent]
            frontier.append(child)
    return result


def find_cycle(edges: Mapping[str, Iterable[str]], start: str, target: str) -> list[str] | None:
    """The path target -> ... -> start if adding the edge start -> target closes a cycle."""
    if start == target:
        return [start, start]
    stack: list[tuple[str, list[str]]] = [(target, [target])]
    seen = {target}
    while stack:
        current, path = stack.pop()
        for nxt in edges.get(current, ()):
            if nxt == start:
                return [start, *path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def some_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the graph (a -> b -> ... -> a), or None; iterative, for graphs of any depth."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(edges.get(root, ()))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return None
