"""Where a task's work is: `fleet task ID` (branch, worktree, delivery), `fleet task ID diff`
and `fleet task ID merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store
from supervisor.errors import BadInput, FleetError, NotFound
from supervisor.model import Task
from supervisor.store.store import Store


def where(store: Store, task: Task) -> dict[str, Any]:
    """The task's branch, worktree and delivery, as `fleet task ID` and `bd show` name them."""
    from supervisor.run import merge, merges
    from supervisor.run.delivery import worktree_root
    from supervisor.run.stack import base_of

    repo = merge.repo_of(task, store.home) if task.cwd else None
    place = repo.folder / task.id if repo else None
    ran_in = task.run.workdir if task.run else ""
    ran_in = ran_in or next(
        (str(a["workdir"]) for a in reversed(task.attempts) if a.get("workdir")), ""
    )
    if ran_in:
        place = worktree_root(Path(ran_in), store.home / "worktrees") or place
    delivery = task.delivery or {}
    out: dict[str, Any] = {
        "branch": f"fleet/{task.id}" if repo else "",
        "worktree": str(place) if place and (place / ".git").exists() else "",
        "base_branch": base_of(task) if repo else "",
        "deliver": task.deliver or "(configured default)",
        "delivery": delivery.get("state", ""),
        "merged_commit": delivery.get("commit", ""),
        "waiting": merges.waiting(store.home).get(task.id) or delivery.get("waiting", ""),
    }
    work = last_work(task)
    if work:
        from supervisor.run.delivery import stat_line

        out["changed"] = stat_line(work)
    return out


def last_work(task: Task) -> dict[str, Any] | None:
    for attempt in reversed(task.attempts):
        work = attempt.get("work")
        if isinstance(work, dict) and work.get("head"):
            return work
    return None


def lines(store: Store, task: Task) -> list[str]:
    info = where(store, task)
    out = []
    for name in ("branch", "base_branch", "worktree", "delivery", "merged_commit", "changed"):
        if info.get(name):
            out.append(f"{name.replace('_', ' ')}: {info[name]}")
    if info.get("waiting"):
        out.append(f"merge: {info['waiting']}")
    return out


def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """`fleet task ID`: the task's state and where its work is."""
    store = open_store(ctx)
    task = store.get(task_id)
    if as_json:
        emit_json({"id": task.id, "title": task.title, "status": task.status, **where(store, task)})
        return
    click.echo(f"{task.id}  {task.title}\nstatus: {task.status}")
    if task.status_reason:
        click.echo(f"why: {task.status_reason}")
    for line in lines(store, task):
        click.echo(line)
    click.echo(f"more: fleet task {task.id} log|plan|knowledge|result|diff|usage|attempts")


def diff(ctx: click.Context, task_id: str, n: int | None, stat: bool, as_json: bool) -> None:
    from supervisor.cli import views
    from supervisor.run.delivery import stat_line

    store = open_store(ctx)
    task = store.get(task_id)
    n = views.attempt_number(task, n)
    record = next((a for a in task.attempts if a.get("n") == n), None)
    if record is None:
        raise NotFound(
            f"attempt {n} of {task_id} is still running: its work is recorded when it ends",
            hint=f"follow it with `fleet task {task_id} log -f`",
        )
    work = record.get("work")
    if not isinstance(work, dict) or not work.get("head"):
        why = (work or {}).get("error") if isinstance(work, dict) else ""
        raise NotFound(
            f"attempt {n} of {task_id} recorded no work"
            + (f": {why}" if why else " (it ran outside a git repository or without isolation)"),
            hint=f"see what it did with `fleet task {task_id} log --attempt {n}`",
        )
    patch = views.artifact(store, task, n, "diff.patch") or b""
    if as_json:
        emit_json({"task": task.id, "attempt": n, **work, "diff": patch.decode(errors="replace")})
        return
    if stat:
        for f in work.get("stat") or []:
            added = "-" if f.get("added") is None else f"+{f['added']}"
            deleted = "-" if f.get("deleted") is None else f"-{f['deleted']}"
            click.echo(f" {f.get('path')} | {added} {deleted}")
        click.echo(
            f" {stat_line(work)} ({work.get('branch')} {str(work.get('base'))[:10]}.."
            f"{str(work.get('head'))[:10]})"
        )
        return
    click.echo(patch.decode(errors="replace"), nl=False)
    if work.get("diff_cut"):
        click.echo(
            f"fleet: the diff was cut at 256 KB; the whole of it: git diff "
            f"{work.get('base')} {work.get('head')}",
            err=True,
        )


def merge_now(ctx: click.Context, task_id: str, as_json: bool = False) -> None:
    """Merge a closed task's branch onto its base now (the merge queue's steps, with its check)."""
    import time

    from supervisor.config import Config
    from supervisor.run import merge, merges
    from supervisor.run.delivery import DeliveryError
    from supervisor.run.ops import commit
    from supervisor.store.store import user_actor

    store = open_store(ctx)
    task = store.get(task_id)
    if task.status != "closed":
        raise BadInput(
            f"task {task_id} is {task.status}: only a closed task's work is merged",
            hint=f"see where it stands with `fleet task {task_id}`",
        )
    if (task.delivery or {}).get("state") == "merged":
        if as_json:
            emit_json(task.to_dict())
            return
        click.echo(f"{task_id} is already merged ({task.delivery.get('commit', '')[:10]})")
        return
    from supervisor.config import load

    config: Config = load(store.cache.config_text())
    actor = user_actor()
    try:
        done = merge.merge_one(task, store.home, config, actor)
        if done.kind == "moved":
            done = merge.merge_one(task, store.home, config, actor)
    except (DeliveryError, OSError) as exc:
        raise FleetError(
            f"cannot merge {task_id} now: {exc}", hint=f"try again: fleet task {task_id} merge"
        ) from None
    commit(store, actor, [merges.settle_op(done, time.time(), config)])
    if done.kind == "merged":
        if as_json:
            emit_json(store.get(task_id).to_dict())
            return
        click.echo(f"merged fleet/{task_id} into {done.base} ({done.commit[:10]})")
        return
    after = store.get(task_id)
    now = f"the task is now {after.status}: {after.status_reason}"
    raise FleetError(
        f"{task_id} did not merge: {done.text}",
        hint=now if after.status != "closed" else f"see where it stands: fleet task {task_id}",
    )
