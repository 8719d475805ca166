"""Whether a new task may name a role: it exists (a file `roles/NAME.md` or a `[roles.NAME]`
table) and its coder is installed. Read without pydantic (whose import costs `bd create` more
than its whole budget): the tree in-process, the role's header and the configuration with tomllib.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from supervisor.errors import BadInput
from supervisor.store.store import Store

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}\Z")  # as supervisor.roles.NAME_PATTERN


def check_role(store: Store, name: str) -> None:
    if not NAME.match(name):
        raise BadInput(
            f"{name!r} is not a valid role name",
            hint="lowercase letters, digits, '-' and '_', starting with a letter (e.g. reviewer)",
        )
    commit = store.cache.sync()
    files: dict[str, tuple[str, str]] = {}
    if commit is not None:
        trees = store.git.trees
        entry = trees.entries(trees.commit_tree(commit)).get("roles")
        files = dict(trees.entries(entry[1])) if entry else {}
    try:
        table = tomllib.loads(store.cache.config_text() or "").get("roles") or {}
    except tomllib.TOMLDecodeError:
        table = {}
    known = sorted({n[:-3] for n in files if n.endswith(".md")} | set(table))
    if name not in known:
        raise BadInput(
            f"unknown role {name!r} (roles: {', '.join(known) or 'none'})",
            hint=f"add it with `fleet roles add {name} --from developer`",
        )
    coder = ""
    if f"{name}.md" in files:
        header = _header(store, files[f"{name}.md"][1])
        if header is None:  # malformed: the full reading names its line
            from supervisor.queue.roles import check_role as full

            full(store, name)
            return
        coder = str(header.get("coder") or "")
    if not coder and isinstance(table.get(name), dict):
        coder = str(table[name].get("coder") or "")
    if coder:
        import coders

        known_coders = coders.names()
        if coder not in known_coders:
            raise BadInput(
                f"role {name!r} uses coder {coder!r}, which is not installed",
                hint=f"fleet roles set {name} coder=<one of {', '.join(known_coders)}>",
            )


def _header(store: Store, sha: str) -> dict[str, Any] | None:
    data = store.git.read(sha) or b""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "+++":
        return {}
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "+++"), None)
    if end is None:
        return None
    try:
        return tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError:
        return None


def mention(store: Store, word: str) -> bool:
    """Whether config.toml or a role file holds `word`, read raw: a cheap look before the
    configuration (and pydantic) is loaded."""
    commit = store.cache.sync()
    if word in store.cache.config_text():
        return True
    if commit is None:
        return False
    trees = store.git.trees
    entry = trees.entries(trees.commit_tree(commit)).get("roles")
    if entry is None:
        return False
    names = [n for n in trees.entries(entry[1]) if n.endswith(".md")]
    blobs = store.git.cat_batch([f"{commit}:{'roles'}/{n}" for n in names])
    return any(data is not None and word.encode() in data for _, data in blobs)
