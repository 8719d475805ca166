"""The configuration as the store holds it: read the current one, change it in one commit.

The model and its rules are `supervisor.config`; this module is where they meet the store.
"""

from __future__ import annotations

from typing import Any

import tomli_w
from pydantic import ValidationError

from supervisor import config, secrets
from supervisor.errors import BadInput
from supervisor.limits import decode_config
from supervisor.store.store import Change, Snapshot, Store


def current(store: Store) -> config.Config:
    store.cache.sync()
    return config.load(store.cache.config_text())


def set_values(store: Store, pairs: list[str], actor: str | None = None) -> config.Config:
    """Apply KEY=VALUE pairs in one commit; refuse all of them if any is bad."""
    updates: list[tuple[list[str], Any]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{pair!r} is not KEY=VALUE", hint="fleet config set max_concurrent=4")
        path = key.strip().split(".")
        parsed = config.parse_value(value.strip())
        if "env" in path[:-1] or (path[-1] == "env" and isinstance(parsed, dict)):
            given = {path[-1]: parsed} if path[-1] != "env" else dict(parsed)
            secrets.refuse({k: str(v) for k, v in given.items()}, key.strip())
        updates.append((path, parsed))

    def build(snap: Snapshot) -> tuple[Change | None, config.Config]:
        text = decode_config(snap.read(config.CONFIG_PATH) or b"")
        data = config.tables(text)
        for path, value in updates:
            config.check_key(path)
            node = data
            for part in path[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise BadInput(
                        f"{'.'.join(path)} is not a table", hint=", ".join(config.keys())
                    )
            node[path[-1]] = value
        return _rewrite(text, data, "configuration", "config: " + ", ".join(pairs))

    return store.mutate(build, actor)


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def edit_entry(
    store: Store,
    table: str,
    name: str,
    entry: dict[str, Any] | None,
    summary: str,
    must_exist: bool = False,
    actor: str | None = None,
) -> config.Config:
    """Replace (or with None, remove) entry `name` of a table such as `accounts`, in one commit."""
    import re

    if not re.match(NAME_PATTERN, name):
        raise BadInput(f"{name!r} is not a valid name", hint="letters, digits, '.', '_' and '-'")

    def build(snap: Snapshot) -> tuple[Change | None, config.Config]:
        text = decode_config(snap.read(config.CONFIG_PATH) or b"")
        data = config.tables(text)
        entries = data.setdefault(table, {})
        if must_exist and name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise BadInput(f"no {table[:-1]} named {name!r}", hint=f"configured: {known}")
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = entry
        return _rewrite(text, data, table[:-1], summary)

    return store.mutate(build, actor)


def _rewrite(
    text: str, data: dict[str, Any], what: str, summary: str
) -> tuple[Change | None, config.Config]:
    """The configuration `data` checked, and the commit that writes it (None: `text` already is)."""
    try:
        cfg = config.Config.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"invalid {what}: {config.explain(exc)}", hint=config.choices(exc)) from None
    config.check_coders(cfg)
    new_text = tomli_w.dumps(data)
    if new_text == text:
        return None, cfg
    return Change(summary, "config_changed", files={config.CONFIG_PATH: new_text.encode()}), cfg


def replace_text(store: Store, before: bytes, after: bytes, actor: str | None = None) -> bool:
    """Make `after` config.toml in one commit, if it is valid and the file is still `before`
    (what the editor was given); False if there is nothing to change."""
    text = decode_config(after)
    config.parse(text)  # BadInput naming the line
    cfg = config.load(text)
    config.check_coders(cfg)
    for name, account in cfg.accounts.items():
        secrets.refuse(account.env, f"accounts.{name}.env")

    def build(snap: Snapshot) -> tuple[Change | None, bool]:
        if (snap.read(config.CONFIG_PATH) or b"") != before:
            raise BadInput(
                "config.toml changed while it was being edited; nothing was saved",
                hint="run `fleet config edit` again",
            )
        if after == before:
            return None, False
        return Change("config: edited", "config_changed", files={config.CONFIG_PATH: after}), True

    return store.mutate(build, actor)


def raw_text(store: Store) -> bytes:
    """config.toml's bytes as the store holds them (b"" when there is none)."""
    return store.read(config.CONFIG_PATH) or b""
