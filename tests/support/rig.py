"""The supervisor loop's test rig: a store, a fake process table and a clock the test moves."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import coders
from supervisor.model import Task
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.run.supervisor import Supervisor, TickReport
from supervisor.store.paths import run_file
from supervisor.store.store import Store
from tests.support import scripted_coder
from tests.support.fakes import FakeProcesses, FakeRun

T0 = 1_900_000_000.0  # the clock every test starts from (readiness never compares it with
# the real clock's creation times)
HOST = "test-host"


@dataclass
class Rig:
    """A store, a fake process table and one supervisor, with a clock the test moves."""

    store: Store
    fake: FakeProcesses
    sup: Supervisor
    work: Path
    now: float = T0
    reports: list[TickReport] = field(default_factory=list)

    def tick(self, at: float | None = None, sup: Supervisor | None = None) -> TickReport:
        if at is not None:
            self.now = at
        report = (sup or self.sup).tick(self.now)
        self.reports.append(report)
        return report

    def task(self, title: str = "task", **fields: Any) -> str:
        fields.setdefault("coder", "shell")
        if fields["coder"] == "shell":
            fields.setdefault("command", "true")
        fields.setdefault("cwd", str(self.work))
        return create(self.store, NewTask(title=title, **fields)).id

    def get(self, task_id: str) -> Task:
        return self.store.get(task_id)

    def runs_of(self, task_id: str) -> list[FakeRun]:
        return [r for r in self.fake.runs if r.env.get("FLEET_TASK_ID") == task_id]

    def run_of(self, task_id: str) -> FakeRun:
        runs = self.runs_of(task_id)
        assert runs, f"{task_id} was never started"
        return runs[-1]

    def say(self, task_id: str, *lines: str) -> None:
        """The running agent of `task_id` prints `lines` (and goes on running)."""
        with self.run_of(task_id).stdout.open("a") as out:
            out.writelines(f"{line}\n" for line in lines)

    def finish(
        self,
        task_id: str,
        code: int = 0,
        lines: Iterable[str] = (),
        result: dict[str, Any] | str | None = None,
    ) -> None:
        run = self.run_of(task_id)
        if result is not None:
            text = result if isinstance(result, str) else json.dumps(result)
            Path(run.env["FLEET_RESULT_FILE"]).write_text(text)
        self.fake.finish(run.handle, code, lines)

    def finish_all(self, code: int = 0) -> None:
        for run in self.fake.running():
            self.fake.finish(run.handle, code)

    def configure(self, *pairs: str) -> None:
        configure.set_values(self.store, list(pairs))

    def committed(self, task_id: str, n: int, name: str) -> bytes | None:
        return self.store.read(run_file(task_id, n, name))


def supervisor(store: Store, fake: FakeProcesses, pid: int, host: str = HOST) -> Supervisor:
    return Supervisor(store, fake, host=host, pid=pid, rng=random.Random(0), background_stops=False)


@pytest.fixture
def rig(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setitem(coders.BUILTINS, scripted_coder.NAME, scripted_coder.MODULE)
    configure.set_values(
        store, ["isolation=none", "coder=shell", "backoff_seconds=10", "grace_seconds=7"]
    )
    work = tmp_path / "work"
    work.mkdir()
    fake = FakeProcesses()
    return Rig(store, fake, supervisor(store, fake, pid=4242), work)


def claims(rig: Rig) -> list[str]:
    return [task_id for report in rig.reports for task_id in report.claimed]
