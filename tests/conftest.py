"""Shared fixtures: every test gets its own fleet home; the real ~/.fleet is never touched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from supervisor.cli.entry import main
from supervisor.store.store import Store

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.support.rig"]  # the supervisor loop's `rig` fixture


# Each folder of tests is a kind, and carries its marker: `pytest -m unit`, `-m "not agents"`.
KINDS = ("unit", "loop", "e2e", "agents")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh FLEET_HOME per test, and a HOME that is not the user's."""
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "fleet-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "fleet-home"


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store.open(home)
    yield opened
    opened.close()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def fleet(capsys: pytest.CaptureFixture[str]) -> object:
    """Run `fleet ARGS...` in this process: fleet("bd", "list") -> Result(code, out, err)."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def fleet_process(*args: str, home: Path, cwd: Path | None = None, timeout: float = 60) -> Result:
    """Run `fleet ARGS...` as a real process (as a user would)."""
    import os

    env = {**os.environ, "FLEET_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    ident = ["-c", "user.name=fleet test", "-c", "user.email=test@fleet.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("test repo\n")
    subprocess.run(["git", "-C", str(repo), "add", "README.md"], check=True)
    subprocess.run(["git", "-C", str(repo), *ident, "commit", "-qm", "init"], check=True)
    return repo
