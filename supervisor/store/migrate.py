"""Bring a store written by an earlier fleet to this fleet's format, in one commit.

Runs by itself the first time a newer fleet reads the store (`Store.snapshot`), or by hand with
`fleet store migrate`. Atomic: the new tree is built on the side (`git fast-import`, files moved
by their object ids, nothing re-read), the commit it started from is kept under
`refs/fleet/backup/format-<n>-<commit>`, then `refs/heads/main` moves by the usual
compare-and-swap. A `kill -9` at any instant leaves the old store (and perhaps its backup ref)
or the migrated one. A store newer than this fleet is refused, never rewritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.errors import Conflict
from supervisor.store.bulk import fast_import
from supervisor.store.paths import BACKUP_REFS, FORMAT, FORMAT_PATH, format_file, moved

if TYPE_CHECKING:
    from supervisor.store.store import Store

TRIES = 20


def migrate(store: Store) -> dict[str, Any]:
    """Migrate the store if it is older than this fleet; what was done, as a report."""
    from supervisor.store.store import user_actor, writers_turn

    for _ in range(TRIES):
        with writers_turn(store.home):
            head = store.head()
            if head is None:
                return {"migrated": False, "format": FORMAT, "reason": "empty store"}
            old = store._check_format(store.git.read(f"{head}:{FORMAT_PATH}"))
            if old == FORMAT:
                return {"migrated": False, "format": FORMAT, "reason": "already current"}
            entries = _listing(store, head)
            placed = [(mode, sha, moved(path, old)) for mode, sha, path in entries]
            placed = [e for e in placed if e[2] != FORMAT_PATH]
            actor = user_actor()
            message = (
                f"migrate the store from format {old} to {FORMAT}\n\n"
                f"{len(placed)} files moved; the previous commit is {backup_ref(old, head)}\n\n"
                f"Fleet-Event: migrated\nFleet-Actor: {actor}"
            )
            ident = f"{actor.split('@')[0]} <{actor}>"
            files: dict[str, bytes | None] = {FORMAT_PATH: format_file()}
            commit = fast_import(store.git, head, message, ident, files, placed, replace_all=True)
            ref = backup_ref(old, head)
            if store.git.ref(ref) is None:
                store.git.cas_ref(head, None, ref)
            if store.git.cas_ref(commit, head):
                store.cache.rebase(head, commit, files)
                return {
                    "migrated": True,
                    "from": old,
                    "format": FORMAT,
                    "files": len(placed),
                    "commit": commit,
                    "backup": ref,
                }
        store.clear_dead_ref_locks()
    raise Conflict(
        f"gave up migrating after {TRIES} tries: other writers kept moving the store",
        hint="retry `fleet store migrate`",
    )


def backup_ref(fmt: int, commit: str) -> str:
    return f"{BACKUP_REFS}format-{fmt}-{commit[:12]}"


def _listing(store: Store, commit: str) -> list[tuple[str, str, str]]:
    """(mode, sha, path) of every file in the commit's tree."""
    out = store.git.run("ls-tree", "-r", "-z", "--full-tree", commit).stdout.decode()
    entries = []
    for item in out.split("\0"):
        if not item:
            continue
        meta, path = item.split("\t", 1)
        mode, _, sha = meta.split(" ")
        entries.append((mode, sha, path))
    return entries
