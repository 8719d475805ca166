"""The accounts' state as the loop knows it: read from the store when it changes, and the ops
that record an early warning, a limit or the end of a streak of limits (the rules are the
domain's: `supervisor.accounts`)."""

from __future__ import annotations

from coders.base import RateLimit
from supervisor import accounts
from supervisor.config import Config
from supervisor.lifecycle import Ending
from supervisor.run.ops import Op
from supervisor.store.store import Snapshot, Store


class Book:
    def __init__(self) -> None:
        self.states: dict[str, accounts.State] = {}  # account name -> what we know of it
        self._commit: str | None = None

    def load(self, store: Store, snap: Snapshot, config: Config) -> None:
        """Read the accounts' states again if the store changed."""
        if snap.commit == self._commit or not config.accounts:
            return
        names = sorted(config.accounts)
        blobs = store.git.cat_batch([f"{snap.commit}:{accounts.state_path(n)}" for n in names])
        self.states = {
            n: accounts.State.from_bytes(data) for n, (_, data) in zip(names, blobs, strict=True)
        }
        self._commit = snap.commit

    def warning(self, name: str, limit: RateLimit, config: Config, now: float) -> Op | None:
        """An early warning crossing `limit_threshold` (or falling back) is recorded at once."""
        if limit.utilization is None or name not in config.accounts:
            return None
        state = self.states.get(name) or accounts.State()
        threshold = config.limit_threshold
        new = accounts.after_warning(state, limit.utilization, limit.resets_at, threshold, now)
        return None if new is None else self._op(name, new, "account_warning")

    def ended(self, name: str, coder: str, end: Ending, config: Config, now: float) -> Op | None:
        """An attempt of account `name` ended: note a limit (and whether another account can
        take the task at once) or the end of a streak of limits."""
        if name not in config.accounts:
            return None
        end.other_account = accounts.other_for(config.accounts, name, coder)
        state = self.states.get(name) or accounts.State()
        after = accounts.after_attempt(state, end.outcome, end.reason, end.resets_at, now)
        return None if after is None else self._op(name, *after)

    def _op(self, name: str, state: accounts.State, event: str) -> Op:
        self.states[name] = state
        return Op("", f"{event} {name}", files={accounts.state_path(name): state.to_bytes()})
