"""Quarantine: subjects (an account, a role, a coder or a task) that get no new claims.

Each quarantine is a file of the store's tree, `quarantine/<kind>-<name>.json` (why, by whom,
when, the evidence), so that adding one and releasing another never conflict. Every decision is
a commit with event `quarantined` or `released`, its evidence in the commit body.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from supervisor.errors import BadInput, NotFound
from supervisor.model import iso
from supervisor.store.store import Change, Snapshot, Store

DIR = "quarantine"
KINDS = ("account", "role", "coder", "task")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def path(subject: str) -> str:
    kind, _, name = subject.partition(":")
    return f"{DIR}/{kind}-{name}.json"


def check(subject: str) -> str:
    kind, sep, name = subject.partition(":")
    if not sep or kind not in KINDS or not NAME.match(name):
        raise BadInput(
            f"{subject!r} is not a subject fleet can quarantine",
            hint="name it as account:NAME, role:NAME, coder:NAME or task:ID",
        )
    return subject


def read(store: Store, commit: str | None) -> dict[str, dict[str, Any]]:
    """Every quarantine in force at `commit`: subject -> its record (read without git)."""
    if commit is None:
        return {}
    trees = store.git.trees
    root = trees.entries(trees.commit_tree(commit))
    folder = root.get(DIR)
    if folder is None:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for _, sha in trees.entries(folder[1]).values():
        data = _blob(store, sha)
        try:
            record = json.loads(data)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("subject"):
            found[str(record["subject"])] = record
    return found


def _blob(store: Store, sha: str) -> bytes:
    try:
        raw = zlib.decompress((store.git.objects / sha[:2] / sha[2:]).read_bytes())
        return raw.split(b"\0", 1)[1]
    except FileNotFoundError:
        return store.git.read(sha) or b""


def add(
    store: Store,
    subject: str,
    reason: str,
    actor: str,
    now: float,
    evidence: list[str] | None = None,
    score: float | None = None,
) -> bool:
    """Quarantine `subject`; False when it already was (nothing written)."""
    check(subject)
    record = {
        "subject": subject,
        "reason": reason,
        "by": actor,
        "at": iso(now),
        "automatic": score is not None,
        "score": score,
        "evidence": evidence or [],
    }

    def build(snap: Snapshot) -> tuple[Change | None, bool]:
        if snap.read(path(subject)) is not None:
            return None, False
        details = "\n".join([f"Reason: {reason}", *(f"- {line}" for line in evidence or [])])
        data = (json.dumps(record, indent=2) + "\n").encode()
        change = Change(f"quarantine {subject}: {reason}"[:120], "quarantined", details=details)
        change.files[path(subject)] = data
        if subject.startswith("task:"):
            change.tasks.append(subject[5:])
        return change, True

    return store.mutate(build, actor)


def release(store: Store, subject: str, actor: str, reason: str = "") -> dict[str, Any]:
    """Lift a quarantine; the record lifted."""
    check(subject)

    def build(snap: Snapshot) -> tuple[Change, dict[str, Any]]:
        data = snap.read(path(subject))
        if data is None:
            raise NotFound(f"{subject} is not quarantined", hint="see what is with `fleet risk`")
        details = f"Reason: {reason}" if reason else ""
        change = Change(f"release {subject}", "released", details=details)
        change.files[path(subject)] = None
        if subject.startswith("task:"):
            change.tasks.append(subject[5:])
        return change, json.loads(data)

    return store.mutate(build, actor)


def blocks(
    quarantined: dict[str, dict[str, Any]], task_id: str, role: str, coder: str, account: str
) -> str:
    """Why a task may not be claimed ("" when nothing quarantined stands in its way)."""
    for subject in (f"task:{task_id}", f"role:{role}", f"coder:{coder}", f"account:{account}"):
        record = quarantined.get(subject)
        if record is not None:
            return f"waits: {subject} is quarantined ({record.get('reason', '')})"
    return ""
