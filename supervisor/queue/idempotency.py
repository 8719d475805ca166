"""`bd create --idempotency-key KEY`: a create that a script may retry without making two tasks.

The task's id is derived from the key (prefix, '-', 8 to 16 base36 characters of its SHA-256), so
a retry finds the task the first try made, in one lookup, whether or not that try lived to print
the id. The key is kept in the task's `metadata.idempotency_key`.
"""

from __future__ import annotations

from supervisor.errors import BadInput
from supervisor.model import Task, base36

KEY_MAX = 200
META = "idempotency_key"


def check(key: str) -> str:
    if not key.strip() or len(key) > KEY_MAX or not key.isprintable():
        raise BadInput(
            f"--idempotency-key must be 1 to {KEY_MAX} printable characters",
            hint="use something unique to the work, e.g. --idempotency-key nightly-2026-01-31",
        )
    return key


def task_id(prefix: str, key: str, widen: int = 0) -> str:
    from hashlib import sha256  # here: hashlib loads OpenSSL, a cost every `bd create` would pay

    digest = int.from_bytes(sha256(key.encode()).digest()[:12], "big")
    return f"{prefix}-{base36(digest, min(16, 8 + widen))}"


def made_by(task: Task, key: str) -> bool:
    return task.metadata.get(META) == key
