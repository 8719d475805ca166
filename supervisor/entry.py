"""The `fleet` executable: `bd create` with plain arguments runs without click, all else through it.

This module and `cli_create` never import click (about 40 ms): a script that creates tasks in a loop
pays only for the store. How every error is reported lives here too, so both paths say it alike.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run() -> None:
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    home, rest = _global_home(args)
    if rest[:2] == ["bd", "create"] and not _bad_home(home):
        from supervisor.cli_create import create, parse

        params = parse(rest[2:])
        if params is not None:
            try:
                print(create(Path(home) if home else None, params))
            except KeyboardInterrupt:
                print("fleet: aborted", file=sys.stderr)
                return 130
            except Exception as exc:
                return report(exc)
            return 0
    from supervisor.cli import main as click_main

    return click_main(args)


def _global_home(args: list[str]) -> tuple[str | None, list[str]]:
    """The value of a leading `--home DIR` (or $FLEET_HOME), and the arguments after it."""
    if args[:1] == ["--home"] and len(args) > 1:
        return args[1], args[2:]
    if args and args[0].startswith("--home="):
        return args[0].partition("=")[2], args[1:]
    return os.environ.get("FLEET_HOME") or None, args


def _bad_home(home: str | None) -> bool:
    """A home click would refuse (empty, or a file): click says so."""
    return home is not None and (not home or (os.path.exists(home) and not os.path.isdir(home)))


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
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {' '.join(sys.argv)}\n{stamp}\n{text}\n")
    except OSError:
        return "(the crash log could not be written)"
    return str(path)
