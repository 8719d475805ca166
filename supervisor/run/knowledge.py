"""The knowledge: the exact text an agent receives for one attempt.

The task's text and acceptance criteria, the results of the tasks it depends on (the handoff), and
the result contract: where to write the JSON result and what it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from supervisor import planning
from supervisor.model import Task

RESULT_SHAPE = (
    '{"status": "done" | "partial" | "blocked", "summary": "...", "open_questions": ["..."]}'
)


def build(
    task: Task,
    workdir: Path,
    result_file: Path,
    lookup: Callable[[str], Task | None],
    max_depth: int = 3,
    job: str = "",
    handbook: str = "",
    branch_notes: list[str] | None = None,
) -> str:
    """`job`: what a triage or refinement attempt asks instead of the work ("" for the work);
    `handbook`: the handbook of the role the attempt runs as; `branch_notes`: what bringing the
    worktree up to date with its base and blockers left for the agent (a conflict to resolve)."""
    from supervisor.run import review

    parts = [f"# Task {task.id}: {task.title}"]
    role = (task.run.role if task.run else "") or task.role
    if role and not handbook.strip():
        parts.append(f"Your role: {role}.")
    handoffs = review.sections(task, handbook, lookup, role)  # the handbook, review handoffs
    for title, text in (
        ("Description", task.description),
        ("Acceptance criteria", task.acceptance_criteria),
        ("Design", task.design),
        ("Notes", task.notes),
    ):
        if text.strip():
            parts.append(f"## {title}\n\n{text.strip()}")
    parts += handoffs
    handoff = _handoff(task, lookup)
    if handoff:
        parts.append("## What the tasks this one depends on produced\n\n" + "\n\n".join(handoff))
    produced = planning.summary(task, lookup) if not task.waiting_on_subtasks else []
    if produced:
        parts.append(
            "## What your subtasks produced\n\nIntegrate their work and finish this task.\n\n"
            + "\n\n".join(produced)
        )
    previous = [a for a in task.attempts if a.get("summary") or a.get("reason")]
    if previous:
        last = previous[-1]
        said = [last.get("reason") or ""] if last.get("outcome") != "success" else []
        said.append(last.get("summary") or "")
        parts.append(
            f"## The previous attempt (#{last.get('n')}) ended {last.get('outcome', '?')}\n\n"
            + "\n\n".join(s for s in said if s)
        )
    if job:
        parts.append(job)
    parts += delivery_notes(task, branch_notes or [])
    parts.append(
        "## How to finish\n\n"
        f"Working directory: {workdir}\n"
        "Work only inside the working directory. Before you change anything, state your plan in a "
        "<plan>...</plan> block.\n"
        "When you stop, whether the task is done or not, write your result as one JSON object:\n"
        f"{RESULT_SHAPE}\n"
        + (
            planning.SUBTASK_CONTRACT + "\n"
            if planning.depth(task.id) < max_depth and not job
            else ""
        )
        + f"Write your result as JSON to: {result_file}"
    )
    return "\n\n".join(parts) + "\n"


def _handoff(task: Task, lookup: Callable[[str], Task | None]) -> list[str]:
    out = []
    for dep in task.dependencies:
        if dep.type not in ("blocks", "conditional-blocks", "waits-for", "parent-child"):
            continue
        other = lookup(dep.depends_on_id)
        if other is None:
            continue
        lines = [f"### {other.id}: {other.title} ({dep.type}, {other.status})"]
        results = [a for a in other.attempts if a.get("summary")]
        if results:
            lines.append(results[-1]["summary"])
            questions = results[-1].get("open_questions") or []
            lines += [f"- open question: {q}" for q in questions]
        if other.close_reason and not (results and results[-1]["summary"] == other.close_reason):
            lines.append(f"Closed: {other.close_reason}")
        lines += changed_files(other)
        out.append("\n".join(lines))
    return out


def changed_files(task: Task) -> list[str]:
    """What a task's branch changed (its last recorded work), as a diffstat."""
    work = next((a["work"] for a in reversed(task.attempts) if a.get("work", {}).get("head")), None)
    if not work:
        return []
    lines = [
        f"Its branch {work.get('branch')} changed {work.get('files', 0)} file(s), "
        f"+{work.get('added', 0)} -{work.get('deleted', 0)}:"
    ]
    for f in work.get("stat") or []:
        added = "-" if f.get("added") is None else f.get("added")
        deleted = "-" if f.get("deleted") is None else f.get("deleted")
        lines.append(f"- {f.get('path')} +{added} -{deleted}")
    return lines


def delivery_notes(task: Task, branch_notes: list[str]) -> list[str]:
    """What the agent must know about its branch: a merge or check that failed last time (the
    handoff of a reopened task), a conflict left to resolve."""
    parts = []
    handoff = str((task.delivery or {}).get("handoff") or "")
    if handoff and (task.delivery or {}).get("state") == "reopened":
        parts.append("## Your work did not merge\n\n" + handoff.strip())
    if branch_notes:
        parts.append("## Your branch\n\n" + "\n\n".join(branch_notes))
    return parts
