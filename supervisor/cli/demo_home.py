"""Where `fleet demo` runs (a home the user named, if empty, else a throwaway one) and how its
closing hint names fleet: as the user ran it (`.venv/bin/fleet`, `python -m supervisor`), so the
hint works from where they are."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from supervisor.errors import BadInput


def given_home(home: Path | None) -> Path | None:
    """The home `--home`/`FLEET_HOME` names, if it is new or empty; refused if it holds tasks."""
    if home is None:
        return None
    from supervisor.store.store import Store

    store = Store.open(home)
    try:
        store.cache.sync()
        count = store.cache.count()
    finally:
        store.close()
    if count:
        raise BadInput(
            f"the demo needs an empty home; {store.home} holds {count} task(s)",
            hint="name a new one: `fleet demo --home /tmp/fleet-demo`"
            " (or unset FLEET_HOME for a throwaway home)",
        )
    return store.home


def fleet_command() -> str:
    """How to run fleet again from here, as it was run this time."""
    argv0 = sys.argv[0] if sys.argv else ""
    name = os.path.basename(argv0)
    if name == "fleet":
        on_path = shutil.which("fleet")
        if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
            return "fleet"
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m supervisor"


def explore_hint(home: Path, given: bool) -> str:
    fleet = fleet_command()
    if given:
        where = f"{fleet} --home {shlex.quote(str(home))}"
        return f"Explore it: {where} tasks --all; {where} log"
    return (
        f"Explore it: export FLEET_HOME={shlex.quote(str(home))}; {fleet} tasks --all; {fleet} log"
    )
