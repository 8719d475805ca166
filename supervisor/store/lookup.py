"""Task ids as people type them: a whole id, or a unique start of it or of its hash (`4amh` for
`fl-4amhq`), as beads accepts them. An ambiguous start is refused with its candidates; an id
that matches nothing gets the nearest ones suggested."""

from __future__ import annotations

import difflib
import re

from supervisor.errors import BadInput, NotFound
from supervisor.model import EXTERNAL_PATTERN, ID_PATTERN, check_id
from supervisor.store.store import Store

START = re.compile(r"^[0-9a-z]{1,16}(?:\.[0-9]{1,4}){0,4}\Z")  # a start of an id's hash
SHOWN = 8  # candidates named in an error


class Ambiguous(BadInput):
    """A start of an id that several tasks share."""


def resolve(store: Store, text: str, what: str = "task") -> str:
    """The id of the one task `text` names; raises NotFound or Ambiguous (exit 2)."""
    value = text
    if EXTERNAL_PATTERN.match(value):
        return value
    cache = store.cache
    cache.sync()
    if ID_PATTERN.match(value) and cache.get(value) is not None:
        return value
    if not (ID_PATTERN.match(value) or START.match(value)):
        check_id(value, f"{what} id")  # raises, saying what an id looks like
    found = matches(store, value)
    if len(found) == 1:
        return found[0]
    if found:
        more = f" (+{len(found) - SHOWN} more)" if len(found) > SHOWN else ""
        shown = ", ".join(found[:SHOWN]) + more
        raise Ambiguous(
            f"{what} id {text!r} is ambiguous: it starts {len(found)} ids: {shown}",
            hint="type more of the id",
        )
    near = difflib.get_close_matches(value, all_ids(store), n=3, cutoff=0.6)
    raise NotFound(
        f"{what} {text} does not exist",
        hint=(f"did you mean {' or '.join(repr(n) for n in near)}? " if near else "")
        + "`fleet bd list --all` shows the ids in this store",
    )


def resolve_all(store: Store, texts: list[str], what: str = "task") -> list[str]:
    return [resolve(store, t, what) for t in texts]


def matches(store: Store, start: str) -> list[str]:
    """Ids that begin with `start`, or whose hash (after the last '-') does."""
    like = start.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = store.cache.db.execute(
        "SELECT id FROM tasks WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' ORDER BY id",
        (like + "%", "%-" + like + "%"),
    ).fetchall()
    out = []
    for (task_id,) in rows:
        tail = str(task_id).rpartition("-")[2]
        if str(task_id).startswith(start) or tail.startswith(start):
            out.append(str(task_id))
    return out


def all_ids(store: Store) -> list[str]:
    return [str(r[0]) for r in store.cache.db.execute("SELECT id FROM tasks").fetchall()]
