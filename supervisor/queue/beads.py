"""beads JSONL <-> fleet tasks: read an export into tasks, write tasks back as one. Pure.

A beads export (`bd export`, `.beads/issues.jsonl`) holds one JSON object per line. Older exports
carry issues only; current ones mark each issue `"_type": "issue"` and may add other records
(memories, a header). Fleet keeps every beads field it does not model in `Task.extra`, so an
import followed by an export gives the same issues back; fleet's own fields travel inside
`metadata.fleet`. `docs/beads.md` describes the mapping.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from supervisor import limits
from supervisor.errors import BadInput
from supervisor.model import TASK_FIELDS, Dependency, Task, check_dep_target, parse_time

# The beads fields `Task` models; every other beads field stays in `Task.extra`.
BEADS_MODELED = (
    "id",
    "title",
    "description",
    "design",
    "acceptance_criteria",
    "notes",
    "status",
    "priority",
    "issue_type",
    "assignee",
    "labels",
    "dependencies",
    "created_at",
    "updated_at",
    "closed_at",
    "close_reason",
    "defer_until",
    "metadata",
)
# Fleet's own fields and the supervisor's bookkeeping (every other `Task` field): top level in a
# task file, under `metadata.fleet` in beads JSONL.
FLEET_KEYS = tuple(f for f in TASK_FIELDS if f not in (*BEADS_MODELED, "extra"))
# Derived by bd on export; dropped on import and computed afresh on export.
COUNT_FIELDS = ("dependency_count", "dependent_count", "comment_count")
# Field order of a line: bd's `Issue` struct, then the fields `IssueWithCounts` adds. Fields bd
# no longer writes (content_hash, source_repo, agent fields, ...) follow in the order they came.
FIELD_ORDER = (
    "_type",
    "id",
    "title",
    "description",
    "design",
    "acceptance_criteria",
    "notes",
    "spec_id",
    "status",
    "priority",
    "issue_type",
    "assignee",
    "owner",
    "estimated_minutes",
    "created_at",
    "created_by",
    "updated_at",
    "started_at",
    "closed_at",
    "close_reason",
    "closed_by_session",
    "lease_expires_at",
    "heartbeat_at",
    "due_at",
    "defer_until",
    "external_ref",
    "source_system",
    "metadata",
    "compaction_level",
    "compacted_at",
    "compacted_at_commit",
    "original_size",
    "labels",
    "dependencies",
    "comments",
    "sender",
    "ephemeral",
    "no_history",
    "wisp_type",
    "pinned",
    "is_template",
    "bonded_from",
    "await_type",
    "await_id",
    "timeout",
    "waiters",
    "source_formula",
    "source_location",
    "mol_type",
    "work_type",
    "event_kind",
    "actor",
    "target",
    "payload",
    *COUNT_FIELDS,
    "parent",
)
_RANK = {name: rank for rank, name in enumerate(FIELD_ORDER)}
# beads time fields that `Task` does not model; they must parse like the ones it does.
EXTRA_TIMES = ("started_at", "due_at", "compacted_at", "lease_expires_at", "heartbeat_at")
# Go's encoder escapes these inside strings; doing the same keeps lines byte-equal to bd's.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


@dataclass
class ImportPlan:
    """What a JSONL text holds. The caller imports nothing while `errors` is not empty."""

    tasks: list[Task] = field(default_factory=list)  # in file order
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why); not blank lines
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)
    lines: dict[str, int] = field(default_factory=dict)  # task id -> its line


def parse_jsonl(text: str) -> ImportPlan:
    """Read a beads export; every line that is not an importable issue is reported by number."""
    plan = ImportPlan()
    seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(line) > limits.LINE_MAX:
            plan.errors.append((number, f"longer than {limits.LINE_MAX} bytes"))
            continue
        try:
            outcome = _parse_line(line)
        except ValueError as exc:
            plan.errors.append((number, str(exc)))
            continue
        if isinstance(outcome, str):
            plan.skipped.append((number, outcome))
        elif outcome.id in seen:
            plan.errors.append((number, f"id {outcome.id} repeats line {seen[outcome.id]}"))
        else:
            seen[outcome.id] = number
            plan.tasks.append(outcome)
    plan.lines = seen
    return plan


def _parse_line(line: str) -> Task | str:
    """The task a line holds, or why the line is skipped; ValueError if the line is invalid."""
    try:
        record = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError:
        raise ValueError(f"nested more than {limits.DEPTH_MAX} levels deep") from None
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object but {type(record).__name__}")
    shape = limits.shape_problem(record)
    if shape:
        raise ValueError(shape)
    kind = record.get("_type") or ("header" if "_schema" in record else "issue")
    if kind != "issue":
        return f"{kind} record, not an issue"
    if record.get("status") == "tombstone":
        return f"tombstone of {record.get('id')} (a deleted issue)"
    try:
        return from_beads(record)
    except ValueError as exc:
        raise ValueError(f"issue {record.get('id')!r}: {exc}") from exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def from_beads(record: dict[str, Any]) -> Task:
    """One beads issue -> a task; raises ValueError naming what is wrong."""
    kind = record.get("_type") or "issue"
    if kind != "issue":
        raise ValueError(f"a {kind} record is not an issue")
    data = {k: v for k, v in record.items() if k != "_type" and k not in COUNT_FIELDS}
    clash = next((k for k in FLEET_KEYS if k in data), None)
    if clash:
        raise ValueError(f"{clash} is a fleet field; in beads JSONL it belongs in metadata.fleet")
    if data.get("priority") is None:
        data["priority"] = 0  # bd does not default a missing priority on import: it is P0
    if data.pop("wisp", None) is True:  # bd's legacy alias of `ephemeral`
        data["ephemeral"] = True
    data.update(_take_fleet_block(data))
    task = Task.from_dict(data)
    too_long = limits.text_problem(vars(task))
    if too_long:
        raise ValueError(too_long)
    _check_issue(task)
    for dep in task.dependencies:
        _check_dependency(task.id, dep)
    return task


def _take_fleet_block(data: dict[str, Any]) -> dict[str, Any]:
    """Remove fleet's fields from `metadata.fleet` and return them; other keys there stay."""
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or "fleet" not in metadata:
        return {}
    block = metadata["fleet"]
    if not isinstance(block, dict):
        raise ValueError("metadata.fleet is not an object")
    rest = {k: v for k, v in block.items() if k not in FLEET_KEYS}
    data["metadata"] = {k: v for k, v in metadata.items() if k != "fleet"}
    if rest:
        data["metadata"]["fleet"] = rest
    return {k: v for k, v in block.items() if k in FLEET_KEYS}


def _check_issue(task: Task) -> None:
    """bd's own import checks that `Task.from_dict` leaves to it."""
    if task.status == "closed" and not task.closed_at:
        raise ValueError("status is closed but closed_at is missing")
    if task.status != "closed" and task.closed_at:
        raise ValueError(f"closed_at is set but status is {task.status}, not closed")
    for name in EXTRA_TIMES:
        value = task.extra.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"{name} is not a time string")
            parse_time(value)
    minutes = task.extra.get("estimated_minutes")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0
    ):
        raise ValueError(f"estimated_minutes {minutes!r} is not a whole number >= 0")
    comments = task.extra.get("comments")
    if comments is not None and not (
        isinstance(comments, list) and all(isinstance(c, dict) for c in comments)
    ):
        raise ValueError("comments is not a list of objects")


def _check_dependency(task_id: str, dep: Dependency) -> None:
    if dep.issue_id != task_id:
        raise ValueError(f"a dependency names issue_id {dep.issue_id!r}, not this issue")
    if dep.depends_on_id == task_id:
        raise ValueError("the issue depends on itself")
    try:
        check_dep_target(dep.depends_on_id)
    except BadInput as exc:
        raise ValueError(exc.message) from exc
    if dep.created_at:
        parse_time(dep.created_at)


def to_beads(task: Task, dependents: int = 0) -> dict[str, Any]:
    """A task -> one beads issue record, fields in bd's order, counts computed.

    `dependents` is how many dependency edges of the exported set point at this task.
    """
    data = task.to_dict()
    own = {k: data.pop(k) for k in FLEET_KEYS if k in data}
    if own:
        data["metadata"] = _with_fleet_block(task.metadata, own)
    comments = data.get("comments")
    data["_type"] = "issue"
    data["dependency_count"] = len(task.dependencies)
    data["dependent_count"] = dependents
    data["comment_count"] = len(comments) if isinstance(comments, list) else 0
    return dict(sorted(data.items(), key=lambda item: _RANK.get(item[0], len(_RANK))))


def _with_fleet_block(metadata: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    block = metadata.get("fleet", {})
    if not isinstance(block, dict):
        raise ValueError("metadata.fleet is reserved for fleet's fields but holds something else")
    return {**metadata, "fleet": {**block, **own}}


def export_jsonl(tasks: Iterable[Task]) -> str:
    """Tasks -> beads JSONL, one line each, in bd's order: priority, newest first, id."""
    chosen = list(tasks)
    dependents = Counter(d.depends_on_id for t in chosen for d in t.dependencies)
    chosen.sort(key=_export_key)
    return "".join(_dumps(to_beads(t, dependents[t.id])) + "\n" for t in chosen)


def export_line(task: Task, dependents: int) -> str:
    """One task as a line of beads JSONL (`dependents`: how many tasks depend on it)."""
    return _dumps(to_beads(task, dependents)) + "\n"


def _export_key(task: Task) -> tuple[int, float, str]:
    created = parse_time(task.created_at) if task.created_at else 0.0
    return (task.priority, -created, task.id)


def _dumps(record: dict[str, Any]) -> str:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_GO_ESCAPES)
