"""`fleet config get|set` with a key fleet does not have: name the nearest keys, not all 40."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from supervisor.errors import BadInput

T = TypeVar("T")


def nearest_key(key: str, action: Callable[[], T]) -> T:
    """Run `action`; when it refuses an unknown config key, say which keys come nearest."""
    try:
        return action()
    except BadInput as exc:
        if not exc.message.startswith("unknown config key"):
            raise
        from supervisor import config
        from supervisor.cli.suggest import nearest

        name = exc.message.split("'")[1] if "'" in exc.message else key
        choices = config.keys()
        near = nearest(name, choices) or [k for k in choices if name.split(".")[0] in k][:3]
        guess = f"did you mean {' or '.join(repr(k) for k in near)}? " if near else ""
        raise BadInput(
            exc.message, hint=f"{guess}`fleet config show` lists every key with its value"
        ) from None
