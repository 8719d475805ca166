"""The `fleet` executable: `bd create` with plain arguments runs without click, all else through it.

This module and `create` never import click (about 40 ms): a script that creates tasks in a loop
pays only for the store. Both paths report errors through `output`, so they say them alike.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def run() -> None:
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = hoist_home(list(sys.argv[1:] if argv is None else argv))
    except Exception as exc:
        from supervisor.cli.output import report

        return report(exc)
    refused = _refuse_input(args)
    if refused:
        return refused
    home, rest = _global_home(args)
    if rest[:2] == ["bd", "create"] and not _bad_home(home):
        from supervisor.cli.create import create, parse
        from supervisor.cli.output import report

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
    from supervisor.cli.main import main as click_main

    return click_main(args)


def hoist_home(args: list[str]) -> list[str]:
    """`--home DIR` may follow the subcommand (`fleet tasks --home DIR`): move it to the front,
    where the group reads it. Arguments after `--` are left alone."""
    end = args.index("--") if "--" in args else len(args)
    for i, arg in enumerate(args[:end]):
        if i == 0:
            continue
        if arg == "--home":
            if i + 1 >= end:
                from supervisor.errors import BadInput

                raise BadInput("--home needs a directory", hint="fleet tasks --home ~/.fleet")
            return [arg, args[i + 1], *args[:i], *args[i + 2 :]]
        if arg.startswith("--home="):
            return [arg, *args[:i], *args[i + 1 :]]
    return args


def _refuse_input(args: list[str]) -> int:
    """Arguments fleet will not run with: bytes that are not UTF-8 (Python keeps them as lone
    surrogates), a blank `--home` or $FLEET_HOME. Exit 2 with one line, else 0."""
    from supervisor.cli.output import report
    from supervisor.errors import BadInput
    from supervisor.store.home import check_value

    for n, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return report(
                BadInput(
                    f"argument {n} is not valid UTF-8: {shown!r}",
                    hint="pass text in UTF-8 (check the shell's locale and the file it came from)",
                )
            )
    try:
        check_value(os.environ.get("FLEET_HOME"), "FLEET_HOME")
        if args[:1] == ["--home"]:
            check_value(args[1] if len(args) > 1 else None, "--home")
        elif args and args[0].startswith("--home="):
            check_value(args[0].partition("=")[2], "--home")
    except BadInput as exc:
        return report(exc)
    return 0


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
