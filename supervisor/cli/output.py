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
    host = host_failure(exc)
    if host is not None:
        exc = host
    if isinstance(exc, FleetError):
        print(f"fleet: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    where = _crash_log(exc)  # a bug: say so in one line, keep the details for a report
    print(f"fleet: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"  details: {where} (please include them in a bug report)", file=sys.stderr)
    return 3


def host_failure(exc: BaseException) -> Exception | None:
    """What the host lacks, when `exc` is the host refusing a write (a full disk, a quota, a
    read-only filesystem, a permission): a failure to report with exit 1, not a bug."""
    import errno

    from supervisor.errors import FleetError, GitError

    home = Path(os.environ.get("FLEET_HOME") or Path.home() / ".fleet").expanduser()
    hint = f"free space on the filesystem of {home} (`df -h {home}`), then retry"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FleetError(f"no space left on device{where}", hint=hint)
        if exc.errno == errno.EROFS:
            return FleetError(f"the filesystem is read-only{where}", hint="remount it writable")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return FleetError(f"permission denied{where}", hint="check the owner and mode")
        return None
    if isinstance(exc, GitError):
        text = exc.stderr.lower()
        if "no space left" in text or "disk quota" in text:
            return FleetError("no space left on device (git could not write)", hint=hint)
        return None
    if isinstance(exc, FleetError) or type(exc).__module__ != "sqlite3":
        return None
    text = str(exc).lower()
    if "disk is full" in text or ("disk i/o error" in text and _full(home)):
        return FleetError("no space left on device (the cache could not be written)", hint=hint)
    if "disk i/o error" in text or "readonly database" in text:
        return FleetError(f"the cache could not be written: {exc}", hint=f"check {home}/cache")
    return None


def _full(home: Path) -> bool:
    """Whether the filesystem of `home` has (almost) no room left."""
    try:
        info = os.statvfs(home if home.exists() else home.parent)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < 1024 * 1024 or info.f_favail == 0


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


# -- what reaches a terminal ---------------------------------------------------------------------
# Control characters in titles and agent output could move the cursor, clear the screen, retitle
# the window (CSI and OSC sequences) or reorder text (bidirectional overrides). Every command that
# prints stored text passes it through `clean`; JSON output is escaped by the encoder instead.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPED = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in [*_CONTROLS, *_BIDI]}
_ONE_LINE = str.maketrans({**_ESCAPED, 0x09: " "})
_MULTI_LINE = str.maketrans({k: v for k, v in _ESCAPED.items() if k not in (0x09, 0x0A)})


def clean(text: str, one_line: bool = True) -> str:
    """`text` with every control character shown as an escape (`\\x1b`), so it prints as itself.
    One line: newlines too (a table row stays one row). Otherwise newlines and tabs are kept."""
    return text.translate(_ONE_LINE if one_line else _MULTI_LINE)


def terminal_text(text: str) -> str:
    """Agent output for stdout: cleaned on a terminal, as it is when piped to a file or program."""
    return clean(text, one_line=False) if sys.stdout.isatty() else text
