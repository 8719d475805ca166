"""The last thing a failed attempt said on stderr, added to its reason: `the command exited with 1:
cat: data.txt: No such file or directory` says what went wrong where a bare exit code does not."""

from __future__ import annotations

import copy
from pathlib import Path

from coders.base import Outcome
from supervisor.lifecycle import Ending

# Endings whose own reason does not say what the agent ran into.
TOLD = {Outcome.FAILURE, Outcome.SETUP_ERROR, Outcome.AUTH_ERROR, Outcome.MAX_TURNS}
READ = 8192  # bytes from the end of the file
WIDTH = 200  # characters of the line kept


def last_line(path: Path) -> str:
    """The last non-blank line of a file, cut to WIDTH; empty when there is none."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - READ))
            data = fh.read()
    except OSError:
        return ""
    lines = [x.strip() for x in data.decode(errors="replace").splitlines() if x.strip()]
    if not lines:
        return ""
    line = "".join(c if c.isprintable() else " " for c in lines[-1])
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def with_stderr(ending: Ending, stderr: Path) -> Ending:
    """`ending` with the last line of stderr in its reason (and block reason), when it failed."""
    if ending.outcome not in TOLD:
        return ending
    line = last_line(stderr)
    if not line or line in ending.reason:
        return ending
    reason = f"{ending.reason}: {line}" if ending.reason else line
    block = f"{ending.block_reason}: {line}" if ending.block_reason else ""
    told = copy.copy(ending)
    told.reason, told.block_reason = reason, block
    return told
