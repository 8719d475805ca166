"""What the tick does around its own work, each part in a module of its own: the store's roles
folded into the configuration, subtasks' parents settled, the merge queue stepped, `[[on]]` rules
and gates reacted to, risk assessed."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from supervisor.config import Config
from supervisor.errors import FleetError
from supervisor.run import decompose, merges
from supervisor.run.attempt import Attempt
from supervisor.run.governor import Governor
from supervisor.run.ops import Op, TickReport
from supervisor.run.reactions import Reactor
from supervisor.run.roleview import RoleView
from supervisor.store.store import Snapshot, Store


class Hooks:
    def __init__(self, store: Store, actor: str, background: bool) -> None:
        self.store = store
        self.parents = decompose.Parents(store)  # tasks waiting for their subtasks
        self.roles = RoleView()  # the store's roles folded into the configuration
        self.reactor = Reactor()  # [[on]] rules, review verdicts, gates
        self.governor = Governor(store, actor)  # risk and quarantine
        self.merges = merges.Queue(store, actor, background)  # delivery

    def config(self, snap: Snapshot, config: Config) -> Config:
        """The configuration with the store's roles; the quarantines of this snapshot."""
        self.governor.load(snap)
        return self.roles.apply(self.store, snap.commit, config)

    def ops(self, snap: Snapshot, config: Config, now: float) -> list[Op]:
        """Parents whose subtasks all closed, and the merge queue's step (which delivers no
        quarantined subject's work)."""
        self.merges.quarantined = dict(self.governor.quarantined)
        return self.parents.settle(snap, now) + self.merges.step(snap.commit, config, now)

    def after(
        self,
        config: Config,
        config_text: str,
        running: Mapping[str, Attempt],
        now: float,
        report: TickReport,
    ) -> None:
        """Once the tick's commits landed: rules and gates react, risk is assessed."""
        with contextlib.suppress(FleetError):  # a rule that cannot apply waits for a fix
            self.reactor.tick(self.store, config, config_text, now)
        self.governor.tick(config, running, now, report)
        report.merging = self.merges.pending([task_id for task_id, _ in report.ended])
