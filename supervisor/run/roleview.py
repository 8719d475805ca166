"""The configuration a supervisor works with: `config.toml` with the store's roles folded into
its `roles` table (`supervisor.roles.effective_config`), read again when either changes."""

from __future__ import annotations

import contextlib

from supervisor import roles
from supervisor.config import Config
from supervisor.errors import FleetError
from supervisor.queue import roles as roles_store
from supervisor.store.store import Store


class RoleView:
    def __init__(self) -> None:
        self._base: Config | None = None
        self._out: Config | None = None
        self._stored: dict[str, roles.Role] = {}

    def apply(self, store: Store, commit: str | None, config: Config) -> Config:
        """`config` (as loaded from config.toml) with the roles of the store at `commit`.

        A role file that does not parse keeps the roles last read (as a bad config.toml keeps
        the last good configuration)."""
        if config is not self._out:
            self._base, self._out = config, None
        stored = self._stored
        with contextlib.suppress(FleetError):
            stored = roles_store.stored(store, commit)
        if self._out is not None and stored == self._stored:
            return self._out
        self._stored = stored
        self._out = roles.effective_config(config if self._base is None else self._base, stored)
        return self._out
