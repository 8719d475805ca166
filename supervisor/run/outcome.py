"""The result contract: the file an agent writes when it ends (what its end means for the task
is the lifecycle's: `supervisor.lifecycle`)."""

from __future__ import annotations

import json
from pathlib import Path

from supervisor.lifecycle import RESULT_STATUSES, AgentResult


def read_result(path: Path) -> tuple[AgentResult | None, str]:
    """The result the agent wrote, or (None, why it is missing or invalid)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "the agent finished without writing its result file"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"the result file cannot be read: {exc}"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return None, f"the result file is not JSON: {exc}"
    if not isinstance(data, dict):
        return None, "the result file does not hold a JSON object"
    status = data.get("status")
    if status not in RESULT_STATUSES:
        return None, f"the result's status {status!r} is not one of {', '.join(RESULT_STATUSES)}"
    summary = data.get("summary", "")
    questions = data.get("open_questions", [])
    if not isinstance(summary, str):
        return None, "the result's summary is not a string"
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        return None, "the result's open_questions is not a list of strings"
    return AgentResult(status, summary, questions, data.get("subtasks"), data), ""
