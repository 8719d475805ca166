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
        name = exc.message.split("'")[1] if "'" in exc.message else key
        near = suggestions(name)
        guess = f"did you mean {' or '.join(repr(k) for k in near)}? " if near else ""
        raise BadInput(
            exc.message, hint=f"{guess}`fleet config show` lists every key with its value"
        ) from None


def suggestions(name: str) -> list[str]:
    """The keys nearest to `name`: `max_concurent` -> max_concurrent; `coders.shell.modle` ->
    coders.<name>.model; `coders.shell` -> the keys of a coder's table."""
    from supervisor import config
    from supervisor.cli.suggest import nearest

    keys = config.keys()
    parts = name.split(".")
    if parts[0] in config.TABLES:
        table = [k for k in keys if k.startswith(parts[0] + ".")]
        if len(parts) < 3:
            return table[:4]
        return nearest(".".join([parts[0], "<name>", *parts[2:]]), table) or table[:4]
    return nearest(name, keys) or nearest(parts[0], keys)
