"""Where the real agent CLIs for the `cli` tests are: `scripts/install-agent-clis` links them into
`$FLEET_CLI_CACHE/bin` (default `${XDG_CACHE_HOME:-~/.cache}/fleet/agent-clis/bin`).

A missing CLI fails the test with the command that installs it: these tests run in CI, never skip.
The user's home comes from the password database, since the tests' HOME is a scratch directory.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest


def cli_cache() -> Path:
    cache = os.environ.get("FLEET_CLI_CACHE")
    if cache:
        return Path(cache)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path(pwd.getpwuid(os.getuid()).pw_dir, ".cache"))
    return Path(xdg) / "fleet" / "agent-clis"


def cli_bin(name: str) -> str:
    """The bin directory holding CLI `name`; fails the test when it is not installed."""
    bin_dir = cli_cache() / "bin"
    if not os.access(bin_dir / name, os.X_OK):
        pytest.fail(
            f"the {name} CLI is not installed in {bin_dir}: run scripts/install-agent-clis {name}"
        )
    return str(bin_dir)
