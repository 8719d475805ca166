"""What `bd create` checks beyond the task's own fields: that its coder exists (refused, with the
nearest name), that its links name tasks (unique starts of ids resolved), and what it warns of
(a coder whose CLI is not installed, a directory outside any git repository). Click-free and
cheap: the coder registry's entry points are read only for a name that is not built in."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from supervisor.errors import BadInput, NotFound
from supervisor.model import Task
from supervisor.store.store import Store

DEFAULT_CODER = "claude"  # the configuration's default `coder` (checked equal by a test)


def known_coder(name: str) -> None:
    """Refuse a coder fleet does not know: `--coder shel` -> did you mean 'shell'?"""
    import coders

    if not name or name in coders.BUILTINS:
        return
    names = coders.names()
    if name in names:
        return
    import difflib

    near = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    guess = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    raise BadInput(
        f"unknown coder {name!r}",
        hint=f"{guess}known coders: {', '.join(names)} (`fleet coders` shows them)",
    )


def resolve_links(store: Store, new: Any) -> None:
    """Whole ids for `--deps` and `--parent` given as unique starts of ids."""
    from supervisor.model import ID_PATTERN
    from supervisor.store.lookup import resolve

    def whole(text: str, what: str) -> str:
        if ID_PATTERN.match(text) and store.cache.get(text) is not None:
            return text
        try:
            return resolve(store, text, what)
        except NotFound:
            if ID_PATTERN.match(text):
                return text  # `create` says it does not exist, and how to make it
            raise

    if new.parent:
        new.parent = whole(new.parent, "parent")
    deps = []
    for spec in new.deps:
        if not spec.strip() or spec.strip().startswith("external:"):
            deps.append(spec)
            continue
        kind, sep, target = spec.strip().rpartition(":")
        deps.append(f"{kind}{sep}{whole(target.strip(), 'dependency')}")
    new.deps = deps


def effective_coder(store: Store, task: Task) -> str:
    """The coder a task runs with: its own, else its role's, else the configuration's."""
    if task.coder:
        return task.coder
    data = _config(store.cache.config_text())
    roles = data.get("roles")
    role = roles.get(task.role) if isinstance(roles, dict) and task.role else None
    if isinstance(role, dict) and isinstance(role.get("coder"), str) and role["coder"]:
        return str(role["coder"])
    coder = data.get("coder")
    return coder if isinstance(coder, str) and coder else DEFAULT_CODER


@functools.lru_cache(maxsize=4)
def _config(text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def missing_binary(coder_name: str) -> str | None:
    """The CLI a coder runs when it is not on PATH, else None."""
    import shutil

    if coder_name == "shell" or shutil.which(coder_name):
        return None
    import coders

    if coder_name in coders.BUILTINS:  # each built-in's CLI bears its name (a test checks it)
        return coder_name
    try:
        binary = coders.get(coder_name).binary
    except Exception:  # an unknown or broken third-party coder: `fleet coders` reports it
        return None
    return binary if binary and not shutil.which(binary) else None


def in_git_repository(path: Path) -> bool:
    return any((p / ".git").exists() for p in (path, *path.parents))


def warnings(store: Store, task: Task) -> list[str]:
    out = []
    coder = effective_coder(store, task)
    binary = missing_binary(coder)
    if binary:
        named = "" if task.coder else " (the default: pass --coder to choose another)"
        out.append(
            f"{task.id} runs with {coder}{named}, but its CLI `{binary}` is not on PATH here;"
            " it fails until it is installed (`fleet coders` shows the coders)"
        )
    if task.isolation != "none" and task.cwd and not in_git_repository(Path(task.cwd)):
        out.append(
            f"{task.cwd} is not in a git repository: {task.id}'s agent works there in place,"
            " not in a worktree of its own"
        )
    return out


def warn_after_create(store: Store, task: Task) -> None:
    for line in warnings(store, task):
        print(f"fleet: warning: {line}", file=sys.stderr)
