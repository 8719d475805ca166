"""Git tree objects built in-process: read a commit's tree, apply path changes, write the trees
that changed as loose objects. A commit then needs one git process (the compare-and-swap
`update-ref`) instead of four, which is what makes the supervisor's commits cheap.

Trees are read from loose objects (fleet writes small commits' objects loose); an object that was
packed (by maintenance, or a bulk commit) is read through the `read_packed` callback, which `Git`
answers from the pack files in-process (`packs.py`), else with one `cat-file --batch`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping

TREE_MODE = "40000"
BLOB_MODE = "100644"
CACHE_LIMIT = 512  # parsed trees kept per process

Entries = dict[str, tuple[str, str]]  # name -> (mode, sha)
Changes = dict[str, "Changes | str | None"]  # name -> subtree changes, blob sha, or None (delete)


class Trees:
    def __init__(
        self,
        read_loose: Callable[[str], bytes | None],
        read_packed: Callable[[str], bytes | None],
        write: Callable[[str, bytes], str],
    ) -> None:
        self._loose = read_loose
        self._packed = read_packed
        self._write = write
        self._cache: dict[str, Entries] = {}

    def commit_tree(self, commit: str) -> str:
        """The tree sha of a commit."""
        data = self._object(commit, "commit")
        first = data.split(b"\n", 1)[0].decode()
        if not first.startswith("tree "):
            raise ValueError(f"commit {commit} has no tree")
        return first[5:]

    def apply(self, base_tree: str | None, changes: Mapping[str, str | None]) -> str:
        """The tree of `base_tree` with `changes` applied (path -> blob sha, or None to delete)."""
        nested: Changes = {}
        for path, sha in changes.items():
            node = nested
            *dirs, name = path.split("/")
            for part in dirs:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"{path}: {part} is a file")
                node = child
            node[name] = sha
        return self._apply(base_tree, nested) or self._write("tree", b"")

    def _apply(self, tree: str | None, changes: Changes) -> str | None:
        entries = dict(self.entries(tree)) if tree else {}
        for name, change in changes.items():
            if isinstance(change, dict):
                mode, sha = entries.get(name, ("", ""))
                child = self._apply(sha if mode == TREE_MODE else None, change)
                if child is None:
                    entries.pop(name, None)
                else:
                    entries[name] = (TREE_MODE, child)
            elif change is None:
                entries.pop(name, None)
            else:
                entries[name] = (BLOB_MODE, change)
        if not entries:
            return None
        sha = self._write("tree", serialize(entries))
        self._remember(sha, entries)
        return sha

    def entries(self, tree: str) -> Entries:
        cached = self._cache.get(tree)
        if cached is None:
            cached = parse(self._object(tree, "tree"))
            self._remember(tree, cached)
        return cached

    def _remember(self, sha: str, entries: Entries) -> None:
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[sha] = entries

    def _object(self, sha: str, kind: str) -> bytes:
        raw = self._loose(sha)
        if raw is not None:
            data = zlib.decompress(raw)
            header, _, body = data.partition(b"\0")
            if not header.startswith(kind.encode() + b" "):
                raise ValueError(f"object {sha} is not a {kind}")
            return body
        packed = self._packed(sha)
        if packed is None:
            raise ValueError(f"object {sha} is missing")
        return packed


def parse(data: bytes) -> Entries:
    entries: Entries = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space].decode()
        name = data[space + 1 : nul].decode()
        entries[name] = (mode, data[nul + 1 : nul + 21].hex())
        pos = nul + 21
    return entries


def serialize(entries: Entries) -> bytes:
    """Git's tree format, entries in git's order (a tree sorts as if its name ended in '/')."""

    def key(name: str) -> bytes:
        return (name + "/" if entries[name][0] == TREE_MODE else name).encode()

    return b"".join(
        f"{entries[name][0]} {name}\0".encode() + bytes.fromhex(entries[name][1])
        for name in sorted(entries, key=key)
    )
