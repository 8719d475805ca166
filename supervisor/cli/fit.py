"""Tables that fit the terminal: the last column (a title) is cut to the width that is left."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GAP = 2  # spaces between the columns of a plain table
NARROWEST = 12  # a title is never cut shorter than this


def terminal_width() -> int | None:
    """The terminal's width, or None when the output is not a terminal (a pipe gets it all)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def fit_last(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], width: int | None
) -> list[list[Any]]:
    """`rows` with their last cell cut so that each line fits in `width` (None: unchanged)."""
    out = [list(r) for r in rows]
    if width is None or not out:
        return out
    widths = [len(h) for h in headers[:-1]]
    for row in out:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(ANSI.sub("", str(cell))))
    room = max(NARROWEST, width - sum(widths) - GAP * len(widths))
    for row in out:
        row[-1] = cut(str(row[-1]), room)
    return out
