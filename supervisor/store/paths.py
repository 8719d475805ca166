"""Where things live in the store's tree: the ONE place that maps a task id to its paths.

Read or write a task file or an attempt record only through these functions, never by building
`tasks/...` or `runs/...` yourself: the layout has a format number, and a path built by hand
breaks the day the format changes.

    task_path("fl-3k9x")                  tasks/e/0/8/fl-3k9x.json
    run_dir("fl-3k9x", 2)                 runs/e/0/8/fl-3k9x/2
    run_file("fl-3k9x", 2, "output.log")  runs/e/0/8/fl-3k9x/2/output.log

Format 2 (this one) shards by the first three hex digits of the SHA-1 of the id, one directory
level per digit (4,096 leaves), so that a commit rewrites five small trees instead of one tree as
big as the queue. Format 1 (fleet before the store had a format) kept every task in one flat
`tasks/<id>.json` and every record in `runs/<id>/<n>/`. The tree's root holds `format` (the
number, one line); a tree without it is format 1. See docs/architecture.md, "The store layout".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import sha1
else:  # the builtin SHA-1: importing hashlib loads OpenSSL, a start-up cost `bd create` feels
    try:
        from _sha1 import sha1
    except ImportError:  # pragma: no cover - interpreters without it
        from hashlib import sha1

FORMAT = 2  # the store format this fleet writes
FORMAT_PATH = "format"  # at the root of the tree: the format number, one line
CONFIG_PATH = "config.toml"
TASKS = "tasks"  # the directory of task files
RUNS = "runs"  # the directory of attempt records
BACKUP_REFS = "refs/fleet/backup/"  # where a migration leaves the commit it started from


def shard(task_id: str) -> str:
    """The three directory levels a task's files live under, e.g. `e/0/8`."""
    digits = sha1(task_id.encode()).hexdigest()
    return f"{digits[0]}/{digits[1]}/{digits[2]}"


def task_path(task_id: str, fmt: int = FORMAT) -> str:
    """The path of a task's JSON file."""
    if fmt == 1:
        return f"{TASKS}/{task_id}.json"
    return f"{TASKS}/{shard(task_id)}/{task_id}.json"


def runs_path(task_id: str, fmt: int = FORMAT) -> str:
    """The directory holding every attempt record of a task."""
    if fmt == 1:
        return f"{RUNS}/{task_id}"
    return f"{RUNS}/{shard(task_id)}/{task_id}"


def run_dir(task_id: str, n: int, fmt: int = FORMAT) -> str:
    """The directory of attempt `n`'s record (`output.log`, `attempt.json`, ...)."""
    return f"{runs_path(task_id, fmt)}/{n}"


def run_file(task_id: str, n: int, name: str, fmt: int = FORMAT) -> str:
    """One file of attempt `n`'s record."""
    return f"{run_dir(task_id, n, fmt)}/{name}"


def every_task_path(task_id: str) -> list[str]:
    """A task's file in every format, newest first (history reads across a migration)."""
    return [task_path(task_id, fmt) for fmt in range(FORMAT, 0, -1)]


def is_task_file(path: str) -> bool:
    """Whether a tree path is a task file, in any format."""
    return path.startswith(TASKS + "/") and path.endswith(".json")


def task_id_of(path: str) -> str:
    """The id of a task file path, in any format (the file is named after the task)."""
    return path.rsplit("/", 1)[-1][: -len(".json")]


def moved(path: str, fmt: int) -> str:
    """Where a format-`fmt` path goes in this format (migration); other paths stay put."""
    if fmt == FORMAT:
        return path
    parts = path.split("/")
    if fmt == 1 and parts[0] == TASKS and len(parts) == 2 and is_task_file(path):
        return task_path(task_id_of(path))
    if fmt == 1 and parts[0] == RUNS and len(parts) >= 3:
        return f"{runs_path(parts[1])}/{'/'.join(parts[2:])}"
    return path


def parse_format(data: bytes | None) -> int:
    """The format a tree's `format` file names (no file: 1); ValueError when unreadable."""
    if data is None:
        return 1
    text = data.decode(errors="replace").strip()
    if not text.isdigit():
        raise ValueError(f"the store's format file holds {text[:40]!r}, not a number")
    return int(text)


def format_file() -> bytes:
    return f"{FORMAT}\n".encode()
