"""What every path of the command line shares and none of it imports click for: JSON output, and
how an error is reported (one line, a hint, the exit code; a bug's traceback to the crash log)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def report(exc: Exception) -> int:
    """Say what went wrong on stderr; the exit code (2 bad input, 3 a bug in fleet)."""
    from supervisor.errors import FleetError

    if isinstance(exc, BrokenPipeError):
        return 0
    if isinstance(exc, FleetError):
        print(f"fleet: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    where = _crash_log(exc)  # a bug: say so in one line, keep the details for a report
    print(f"fleet: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"  details: {where} (please include them in a bug report)", file=sys.stderr)
    return 3


def _crash_log(exc: Exception) -> str:
    """Append the traceback, version and platform to the home's crash log; return its path."""
    import platform
    import traceback
    from importlib.metadata import version

    home = Path(os.environ.get("FLEET_HOME") or Path.home() / ".fleet").expanduser()
    path = home / "logs" / "crash.log" if (home / "logs").is_dir() else Path("/tmp/fleet-crash.log")
    text = "".join(traceback.format_exception(exc))
    stamp = f"fleet {version('fleet')}, Python {platform.python_version()}, {platform.platform()}"
    try:
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"--- {' '.join(sys.argv)}\n{stamp}\n{text}\n")
    except OSError:
        return "(the crash log could not be written)"
    return str(path)
