"""`fleet demo`: the whole loop on a throwaway home and repository, no agent CLI or account.

It queues a small graph of shell tasks (two in parallel, one that fails once and is retried, one
that waits for all of them and receives their results), runs the supervisor until idle, and shows
the fleet and one task in depth. Each task's work is committed on its branch by its agent and
merged onto the repository's `main` by the merge queue; the last screen is `main`'s log.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.run.daemon import Loop
from supervisor.store.git import clean_env
from supervisor.store.store import Store

DONE = 'printf \'{"status": "done", "summary": "%s"}\' "$SUMMARY" > "$FLEET_RESULT_FILE"'

GRAPH = [
    (
        "setup",
        "Lay out the project",
        [],
        "mkdir -p src && echo 'project laid out in src/' && SUMMARY='src/ laid out'; " + DONE,
    ),
    (
        "docs",
        "Write the docs",
        ["setup"],
        "sleep 1; echo '# Demo' > README.md; echo 'docs written' && SUMMARY='README.md written'; "
        + DONE,
    ),
    (
        "code",
        "Write the code",
        ["setup"],
        "sleep 1; echo 'print(42)' > main.py; echo 'code written' && SUMMARY='main.py prints 42'; "
        + DONE,
    ),
    (
        "flaky",
        "Run the flaky tests",
        ["setup"],
        "if [ ! -e .tried ]; then touch .tried; echo 'tests failed: flaky network' >&2; "
        "echo 'first run fails'; exit 1; fi; "
        "echo 'tests passed on retry' && SUMMARY='tests pass'; " + DONE,
    ),
    (
        "ship",
        "Ship it",
        ["docs", "code", "flaky"],
        "echo 'this branch starts with the work of the tasks it depends on:' && "
        'for f in *; do echo "$f"; done && '
        "echo 'version 1' > VERSION && SUMMARY='VERSION written; shipped'; " + DONE,
    ),
]


def run(
    echo: Callable[[str], None], keep: bool = False, home: Path | None = None
) -> tuple[Store, dict[str, str], Path]:
    """Run the demo (in `home`, else a throwaway one); its store, its tasks' ids and the
    repository the agents worked in."""
    base = Path(tempfile.mkdtemp(prefix="fleet-demo-"))
    repo = base / "repo"
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "NOTES.md").write_text("A demo repository.\n")
    _git(repo, "add", "NOTES.md")
    _git(
        repo,
        "-c",
        "user.name=fleet demo",
        "-c",
        "user.email=demo@fleet.invalid",
        "commit",
        "--quiet",
        "-m",
        "start",
    )
    store = Store.open(home or base / "home")
    echo(f"$ export FLEET_HOME={store.home}   # a throwaway home; repository: {repo}")
    configure.set_values(store, ["backoff_seconds=0.5", "max_concurrent=3", "coder=shell"])
    ids: dict[str, str] = {}
    for name, title, deps, command in GRAPH:
        new = NewTask(
            title=title, coder="shell", command=command, cwd=str(repo), deps=[ids[d] for d in deps]
        )
        ids[name] = create(store, new).id
        after = f" --deps {','.join(ids[d] for d in deps)}" if deps else ""
        echo(f"$ fleet bd create {title!r} --coder shell --command ...{after}   -> {ids[name]}")
    echo("$ fleet supervisor run --until-idle")
    started = time.time()
    Loop(store).run(until_idle=True)
    echo(f"(finished in {time.time() - started:.1f} s)\n")
    return store, ids, repo


def base_log(repo: Path) -> str:
    """The demo repository's `main`: the agents' commits and the queue's merges."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%h  %<(26,trunc)%an %s", "main"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, env=clean_env(), capture_output=True
    )
