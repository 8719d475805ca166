"""Ending an attempt: how it ended (its outcome), its record, its files, and the op that
records them on its task (the lifecycle decides where the task goes next)."""

from __future__ import annotations

import json
from typing import Any

from coders.base import Outcome
from supervisor import budgets, lifecycle
from supervisor.lifecycle import Ending, Policy
from supervisor.model import Run, Stop, Task, iso
from supervisor.redact import redact_files
from supervisor.run import diffsig
from supervisor.run.attempt import Attempt, read, run_dir, write_json
from supervisor.run.ops import Op
from supervisor.run.outcome import read_result


def note_side_limit(attempt: Attempt) -> None:
    """The highest early warning the coder's side files report (read once the agent ended)."""
    if attempt.spec is None:
        return
    side = attempt.coder.side_events(attempt.spec, attempt.parser.session_id)
    limits = [e.limit for e in side if e.limit and e.limit.utilization is not None]
    attempt.limit = max(limits, key=lambda lim: lim.utilization or 0.0, default=attempt.limit)


def write_status(attempt: Attempt, now: float, prices: Any) -> None:
    """The running attempt's newest figures, for `fleet tasks` (its live status file)."""
    attempt.status_lines, attempt.status_at = attempt.lines, now
    summary = attempt.summary()
    summary["usage"]["cost_usd"] = budgets.cost(attempt.usage, prices)
    write_json(attempt.files.status, summary)


def classify(attempt: Attempt, code: int, stop: Stop | None) -> Ending:
    """The outcome of an attempt whose process exited with `code`. `stop`: the person's stop
    request, when the supervisor stopped it for one (`attempt.stop` starts with "killed")."""
    verdict = attempt.parser.finish(code)
    if attempt.stop:
        kind, _, reason = attempt.stop.partition(": ")
        if kind == "killed":
            return lifecycle.stopped(stop)
        outcome = Outcome(kind)
        return Ending(
            outcome, reason, block_reason=reason if outcome == Outcome.OVER_BUDGET else ""
        )
    result, problem = read_result(attempt.files.result)
    if verdict.outcome != Outcome.SUCCESS:
        return Ending(verdict.outcome, verdict.reason, result, verdict.resets_at)
    if result is None and (attempt.coder.needs_result or attempt.files.result.exists()):
        return Ending(Outcome.FAILURE, problem)
    if result is not None and result.status == "partial":
        return Ending(Outcome.SUCCESS, f"the agent did part of it: {result.summary}", result)
    return Ending(Outcome.SUCCESS, "", result)


def record(
    attempt: Attempt, ending: Ending, code: int, now: float, actor: str, prices: Any
) -> dict[str, Any]:
    """The attempt's summary, kept in the task's `attempts` and as `attempt.json`."""
    usage = attempt.usage
    result = ending.result
    priced = budgets.cost(usage, prices)
    source = "cli" if usage.cost_usd is not None else "prices" if priced is not None else ""
    return {
        "n": attempt.n,
        "outcome": ending.outcome.value,
        "reason": ending.reason,
        "exit_code": code,
        "started_at": iso(attempt.started_at),
        "ended_at": iso(now),
        "seconds": round(now - attempt.started_at, 3),
        "coder": attempt.coder.name,
        "model": attempt.model or usage.model or attempt.coder.default_model,
        "account": attempt.account,
        "actor": actor,
        "workdir": attempt.workdir,
        "session_id": attempt.parser.session_id,
        "usage": {**usage.to_dict(), "cost_usd": priced},
        "cost_source": source,
        "result_status": result.status if result else "",
        "summary": result.summary if result else "",
        "open_questions": result.open_questions if result else [],
        "resets_at": iso(ending.resets_at) if ending.resets_at else "",
        "lines": attempt.lines,
    }


def artifacts(attempt: Attempt, summary: dict[str, Any]) -> dict[str, bytes]:
    """The files committed under `runs/<task>/<n>/`."""
    base = run_dir(attempt.task_id, attempt.n)
    files = {
        f"{base}/output.log": read(attempt.files.stdout),
        f"{base}/stderr.log": read(attempt.files.stderr),
        f"{base}/log.txt": read(attempt.files.log),
        f"{base}/knowledge.md": read(attempt.files.knowledge),
    }
    if attempt.parser.plan:
        files[f"{base}/plan.md"] = (attempt.parser.plan.rstrip() + "\n").encode()
    if attempt.files.result.exists():
        files[f"{base}/result.json"] = read(attempt.files.result)
    files, summary["redactions"] = redact_files(files)  # counted here; the store redacts anyway
    summary["diff"] = diffsig.signals(attempt.workdir, attempt.task_id)  # risk's diff signals
    files[f"{base}/attempt.json"] = (json.dumps(summary, indent=2) + "\n").encode()
    return files


def end_op(
    attempt: Attempt, ending: Ending, summary: dict[str, Any], now: float, policy: Policy
) -> Op:
    """Record the ended attempt and its files on its task."""
    files = artifacts(attempt, summary)

    def change(task: Task) -> bool:
        return lifecycle.end(task, attempt.n, ending, dict(summary), now, policy)

    return Op(attempt.task_id, ending.outcome.value, change, files, ended=True)


def abandon_op(task_id: str, n: int, ending: Ending, actor: str, now: float, policy: Policy) -> Op:
    """End attempt n without a process to classify: requeued (killed) or blocked (setup)."""
    summary: dict[str, Any] = {
        "n": n,
        "outcome": ending.outcome.value,
        "reason": ending.reason,
        "actor": actor,
        "started_at": iso(now),
        "ended_at": iso(now),
    }

    def change(task: Task) -> bool:
        return lifecycle.end(task, n, ending, dict(summary), now, policy)

    event = "requeued" if ending.outcome == Outcome.KILLED and not ending.block_reason else ""
    return Op(task_id, event or ending.outcome.value, change, ended=True)


def checkpoint_op(attempt: Attempt, now: float) -> Op:
    """The running attempt's output so far, and its live figures on its task."""
    attempt.checkpoint_at = now
    base = run_dir(attempt.task_id, attempt.n)
    files = {
        f"{base}/output.log": read(attempt.files.stdout),
        f"{base}/log.txt": read(attempt.files.log),
    }
    return live_op(attempt.task_id, attempt.n, "checkpoint", attempt.summary(), files)


def live_op(
    task_id: str, n: int, event: str, live: dict[str, Any], files: dict[str, bytes] | None = None
) -> Op:
    """Put attempt n's live figures in its task's run record (if n still runs)."""

    def change(task: Task) -> bool:
        return lifecycle.note(task, n, lambda run: run.update(live))

    return Op(task_id, event, change, files or {})


def warning_op(attempt: Attempt, name: str, used: float) -> Op:
    text = f"{used:.0%} of its {name} budget used (attempt {attempt.n})"

    def set_warning(run: Run) -> None:
        run.budget_warning = text

    def change(task: Task) -> bool:
        return lifecycle.note(task, attempt.n, set_warning)

    return Op(attempt.task_id, "budget_warning", change)
