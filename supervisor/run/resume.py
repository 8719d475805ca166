"""Resuming an agent's session instead of starting over.

- An agent that ends cleanly (exit 0) without writing its result file is resumed once, in the
  same session, with a short nudge asking for the result. If the nudged session still writes
  none, the agent's final message becomes the summary and the task is blocked, waiting for a
  person; its work stays on its branch and no further attempt is spent.
- The attempt after a `partial` result, a rate limit, or a supervisor that stopped its agent
  resumes the previous attempt's session (same coder, same account, so the CLI finds it) with a
  short "continue" message instead of the whole knowledge again. The record says which session
  was resumed and estimates the tokens this saved: the previous attempt's tokens, which a fresh
  start would spend again to get back to where it stopped.

Which CLIs can resume (each one's way is in `coders/`: `--resume`, `exec resume`, `--resume`,
`-s`): Claude Code, Codex, Gemini CLI, opencode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coders.base import Outcome
from supervisor import lifecycle
from supervisor.lifecycle import Ending
from supervisor.model import Task
from supervisor.run.attempt import Attempt

RESUMABLE = frozenset({"claude", "codex", "gemini", "opencode"})
NO_RESULT = "the agent finished without writing its result file"
STOPPED = "stopped with the supervisor"

NUDGE = (
    "You stopped without writing your result file. Do not start over, and change nothing more "
    "unless it is needed. Write your result now, as one JSON object:\n{shape}\n"
    "Write your result as JSON to: {path}"
)
CONTINUE = (
    "Your previous turn ended: {why}. Continue the task where you left off (your working "
    "directory is as you left it; fleet committed it on your branch). {extra}When you stop, "
    "write your result as one JSON object\n{shape}\nto: {path}"
)


def plan(task: Task, coder: str, account: str) -> dict[str, Any] | None:
    """The session the next attempt resumes, and why; None to start afresh."""
    if coder not in RESUMABLE or not task.attempts:
        return None
    last = task.attempts[-1]
    session = str(last.get("session_id") or "")
    if not session or last.get("coder") != coder or str(last.get("account") or "") != account:
        return None
    outcome, status = last.get("outcome"), last.get("result_status")
    if last.get("nudge") == "due":
        kind = "nudge"
    elif outcome == Outcome.SUCCESS.value and status == "partial":
        kind = "partial"
    elif outcome == Outcome.RATE_LIMITED.value:
        kind = "rate_limited"
    elif outcome == Outcome.KILLED.value and last.get("reason") == STOPPED:
        kind = "restart"
    else:
        return None
    usage = last.get("usage") or {}
    saved = sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    )
    return {"session": session, "kind": kind, "from_attempt": last.get("n"), "tokens_saved": saved}


def prompt(resumed: dict[str, Any], task: Task, result_file: Path, notes: list[str]) -> str:
    """The short message a resumed session gets instead of the whole knowledge."""
    from supervisor.run.knowledge import RESULT_SHAPE, delivery_notes

    if resumed["kind"] == "nudge":
        return NUDGE.format(shape=RESULT_SHAPE, path=result_file) + "\n"
    last = task.attempts[-1]
    why = {
        "partial": f"you reported partial progress ({last.get('summary') or 'no summary'})",
        "rate_limited": "the model's rate limit stopped you",
        "restart": "fleet's supervisor restarted and stopped you",
    }[resumed["kind"]]
    extra = "\n\n".join(delivery_notes(task, notes))
    return (
        CONTINUE.format(
            why=why, extra=f"\n\n{extra}\n\n" if extra else "", shape=RESULT_SHAPE, path=result_file
        )
        + "\n"
    )


def write(root: Path, resumed: dict[str, Any]) -> None:
    (root / "resume.json").write_text(json.dumps(resumed))


def read(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / "resume.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def on_end(attempt: Attempt, ending: Ending, record: dict[str, Any]) -> None:
    """Note on the attempt's record the session it resumed, and what a missing result means:
    `nudge: due` (resume once with a nudge) or `nudge: final` (wait for a person)."""
    resumed = read(attempt.files.root)
    if resumed:
        record["resumed"] = resumed
    if ending.outcome != Outcome.FAILURE or not ending.reason.startswith(NO_RESULT) or attempt.stop:
        return
    if resumed and resumed.get("kind") == "nudge":
        record["nudge"] = "final"
        record["summary"] = final_message(attempt.files.log)
    elif attempt.coder.name in RESUMABLE and attempt.parser.session_id:
        record["nudge"] = "due"


def settle(task: Task, record: dict[str, Any], now: float) -> bool:
    """Record an attempt that ended without a result: resumed next (not counted), or the task
    blocked waiting for a person. False when the attempt is not such a case."""
    nudge = record.get("nudge")
    if nudge not in ("due", "final"):
        return False
    n = int(record.get("n") or 0)
    if nudge == "due":
        why = "ended without its result file: its session is resumed once"
        return lifecycle.without_result(task, n, record, "open", why, now)
    summary = str(record.get("summary") or "").strip() or "(it said nothing)"
    why = (
        "waits for a person: the agent ended twice without writing its result, even when "
        f"asked; its work is on its branch. Its last message: {summary[:300]}"
    )
    return lifecycle.without_result(task, n, record, "blocked", why, now)


def final_message(log: Path) -> str:
    """The agent's last message, from its rendered log: the final result, else its last text."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    texts = [line[9:] for line in lines if len(line) > 9 and line[2] == ":" and line[5] == ":"]
    for text in reversed(texts):
        if text.startswith("[result] "):
            return text[len("[result] ") :].strip()
    for text in reversed(texts):
        if not text.startswith("["):
            return text.strip()
    return ""
