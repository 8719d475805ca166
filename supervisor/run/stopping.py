"""A supervisor that was asked to stop says so, for `fleet supervisor status` to show `stopping`:
`live/stopping.json` names its pid, since when, and how (graceful or now). A note left by an
earlier supervisor (another pid) means nothing."""

from __future__ import annotations

import json
import time
from typing import Any

from supervisor.store.store import Store


def path(store: Store) -> Any:
    return store.home / "live" / "stopping.json"


def mark(store: Store, pid: int, how: str) -> None:
    """Record that supervisor `pid` is stopping (`graceful` or `now`); the first time is kept."""
    current = read(store, pid)
    since = current["since"] if current else time.time()
    tmp = path(store).with_name(f"stopping.json.{pid}.tmp")
    try:
        tmp.write_text(json.dumps({"pid": pid, "since": since, "how": how}))
        tmp.replace(path(store))
    except OSError:
        pass  # only a note for `status`; the stop itself goes on


def read(store: Store, pid: int) -> dict[str, Any] | None:
    """The stop note of supervisor `pid`, if it is stopping."""
    try:
        data = json.loads(path(store).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("pid") != pid:
        return None
    return data
