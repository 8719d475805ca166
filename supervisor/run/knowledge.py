"""The knowledge: the exact text an agent receives for one attempt.

The task's text and acceptance criteria, the results of the tasks it depends on (the handoff), and
the result contract: where to write the JSON result and what it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from supervisor.model import Task

RESULT_SHAPE = (
    '{"status": "done" | "partial" | "blocked", "summary": "...", "open_questions": ["..."]}'
)


def build(
    task: Task,
    workdir: Path,
    result_file: Path,
    lookup: Callable[[str], Task | None],
    handbook: str = "",
) -> str:
    from supervisor.run import review

    parts = [f"# Task {task.id}: {task.title}"]
    if task.role and not handbook.strip():
        parts.append(f"Your role: {task.role}.")
    handoffs = review.sections(task, handbook, lookup)  # the role's handbook, review handoffs
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
    previous = [a for a in task.attempts if a.get("summary") or a.get("reason")]
    if previous:
        last = previous[-1]
        parts.append(
            f"## The previous attempt (#{last.get('n')}) ended {last.get('outcome', '?')}\n\n"
            + (last.get("summary") or last.get("reason") or "")
        )
    parts.append(
        "## How to finish\n\n"
        f"Working directory: {workdir}\n"
        "Work only inside the working directory. Before you change anything, state your plan in a "
        "<plan>...</plan> block.\n"
        "When you stop, whether the task is done or not, write your result as one JSON object:\n"
        f"{RESULT_SHAPE}\n"
        f"Write your result as JSON to: {result_file}"
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
        out.append("\n".join(lines))
    return out
