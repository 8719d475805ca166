"""The event feed: the store's history read as typed events (`supervisor.events`), oldest first.

A reader names where it stopped with an event id (`<commit>:<index>`); `after` that id it gets
every later event once, in commit order, however the history grew in between. `follow` watches
the ref (a file read every 50 ms, no process) and yields each new commit's events as it lands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from supervisor.errors import BadInput
from supervisor.events import EMIT_KEY, Event, derive, parse_emit
from supervisor.model import iso
from supervisor.store.store import Store, task_path

FIELD, RECORD = "\x1f", "\x1e"
POLL = 0.05  # seconds between two looks at the ref when following
EVENT_NAMES = {"config_changed": "config.changed", "role_changed": "role.changed"}


class Commit:
    def __init__(self, sha: str, parent: str, stamp: int, body: str) -> None:
        self.sha, self.parent, self.stamp, self.body = sha, parent, stamp, body
        self.tasks: list[str] = []
        self.more = False
        self.event = ""
        self.actor = ""
        self.emits: list[str] = []
        for line in body.splitlines()[1:]:
            key, sep, value = line.partition(": ")
            if not sep:
                continue
            if key == "Fleet-Task":
                self.tasks.append(value)
            elif key == "Fleet-Tasks-More":
                self.more = True
            elif key == "Fleet-Event":
                self.event = value
            elif key == "Fleet-Actor":
                self.actor = value
            elif key == EMIT_KEY:
                self.emits.append(value)


def split_id(event_id: str) -> tuple[str, int]:
    sha, sep, index = event_id.partition(":")
    if not sep or len(sha) < 7 or not index.isdigit():
        raise BadInput(
            f"{event_id!r} is not an event id",
            hint="event ids look like <commit>:<n>; take one from `fleet events --json`",
        )
    return sha, int(index)


def commits(
    store: Store, after: str = "", head: str | None = None, since: float = 0
) -> list[Commit]:
    """The commits after `after` (exclusive; "" = from the first) up to `head`, oldest first."""
    head = head or store.head()
    if head is None:
        return []
    span = f"{after}..{head}" if after else head
    args = ["log", "--reverse", f"--format=%H{FIELD}%P{FIELD}%ct{FIELD}%B{RECORD}", span]
    if since:
        args.insert(1, f"--since={int(since)}")
    proc = store.git.run(*args, check=False)
    if proc.returncode != 0:
        raise BadInput(
            f"commit {after} is not in the store's history",
            hint="start over without --after, or with --since TIME",
        )
    out = []
    for record in proc.stdout.decode("utf-8", errors="replace").split(RECORD):
        record = record.strip("\n")
        if record:
            sha, parents, stamp, body = record.split(FIELD, 3)
            out.append(Commit(sha, parents.split(" ")[0] if parents else "", int(stamp), body))
    return out


def events(store: Store, found: list[Commit]) -> list[Event]:
    """The events of `found`, in order, each with its id."""
    touched: list[tuple[Commit, list[str]]] = [(c, _tasks_of(store, c)) for c in found]
    names = []
    for commit, ids in touched:
        for task_id in ids:
            if commit.parent:
                names.append(f"{commit.parent}:{task_path(task_id)}")
            names.append(f"{commit.sha}:{task_path(task_id)}")
    blobs = dict(store.git.cat_batch(names)) if names else {}
    out: list[Event] = []
    for commit, ids in touched:
        stamp, made = iso(commit.stamp), []
        for value in commit.emits:
            parsed = parse_emit(value)
            if parsed is not None:
                made.append(Event(parsed[0], parsed[1], stamp, parsed[2]))
        for task_id in ids:
            old = _load(
                blobs.get(f"{commit.parent}:{task_path(task_id)}") if commit.parent else None
            )
            new = _load(blobs.get(f"{commit.sha}:{task_path(task_id)}"))
            made += [Event(kind, task_id, stamp, data) for kind, data in derive(old, new)]
        name = EVENT_NAMES.get(commit.event)
        if name and not ids:
            made.append(Event(name, "", stamp, {"summary": commit.body.splitlines()[0]}))
        for index, event in enumerate(made):
            event.id, event.actor = f"{commit.sha}:{index}", commit.actor
        out += made
    return out


def read(store: Store, after: str = "", since: float = 0, head: str | None = None) -> list[Event]:
    """Every event after event id `after` ("" = from the start), or since epoch `since`, up to
    commit `head` (default: the newest)."""
    if not after:
        return events(store, commits(store, head=head, since=since))
    sha, index = split_id(after)
    full = store.git.run("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}", check=False)
    if full.returncode != 0:
        raise BadInput(
            f"event {after} is not in the store's history",
            hint="start over without --after, or with --since TIME",
        )
    sha = full.stdout.decode().strip()
    first = [e for e in events(store, commits_one(store, sha)) if split_id(e.id)[1] > index]
    return first + events(store, commits(store, sha, head=head, since=since))


def commits_one(store: Store, sha: str) -> list[Commit]:
    out = store.git.out("log", "-1", f"--format=%H{FIELD}%P{FIELD}%ct{FIELD}%B", sha).strip("\n")
    commit, parents, stamp, body = out.split(FIELD, 3)
    return [Commit(commit, parents.split(" ")[0] if parents else "", int(stamp), body)]


def follow(
    store: Store,
    after: str = "",
    since: float = 0,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """The events after `after`, then each new one as its commit lands, until `stop()`."""
    last_commit = store.head() or ""
    if last_commit:
        yield from read(store, after, since, last_commit)
    elif after:
        split_id(after)  # a bad id is refused even on an empty store
    while not stop():
        head = store.head()
        if head and head != last_commit:
            yield from events(store, commits(store, last_commit, head))
            last_commit = head
            continue
        time.sleep(POLL)


def _tasks_of(store: Store, commit: Commit) -> list[str]:
    if not commit.more:
        return commit.tasks
    args = ["diff-tree", "-r", "--no-renames", "--name-only", "--no-commit-id"]
    span = [commit.parent, commit.sha] if commit.parent else ["--root", commit.sha]
    out = store.git.out(*args, *span, "--", "tasks")
    return [p[len("tasks/") : -len(".json")] for p in out.splitlines() if p.endswith(".json")]


def _load(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
