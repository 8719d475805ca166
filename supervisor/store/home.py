"""What may be a fleet home: refuse a blank path, and a directory that is neither empty nor a
fleet store (a user's project, their home directory), before anything is written there."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.errors import BadInput

# What fleet itself puts in a home; a directory holding only these is a home being created.
OWN_ENTRIES = frozenset(
    {".git", "tmp", "live", "cache", "logs", "run.key", "supervisor.lock", "supervisor.json"}
)


def check_value(raw: str | None, source: str) -> None:
    """Refuse an empty or blank home given by `--home` or $FLEET_HOME (an unset shell variable)."""
    if raw is not None and not raw.strip():
        raise BadInput(
            f"{source} is empty: fleet will not use the current directory as its home",
            hint="give a directory (`fleet --home ~/.fleet ...`) or unset FLEET_HOME",
        )


def is_store(git_dir: Path) -> bool:
    """Whether `git_dir` is a fleet store's repository: bare (a project's `.git` is not)."""
    try:
        text = (git_dir / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "bare = true" in text


def check_unused(home: Path) -> None:
    """Refuse to make a home in an existing directory that holds anything but fleet's own files."""
    try:
        names = os.listdir(home)
    except (FileNotFoundError, NotADirectoryError):  # to be made (or, if it cannot, said so)
        return
    foreign = sorted(n for n in names if n not in OWN_ENTRIES and not n.startswith(".git.init-"))
    if foreign or ((home / ".git").exists() and not is_store(home / ".git")):
        shown = ", ".join(foreign[:3]) or ".git (a project's repository)"
        raise BadInput(
            f"{home} is not a fleet home and not empty (it holds {shown})",
            hint="use an empty directory or a fleet home: `fleet --home ~/.fleet ...`",
        )
