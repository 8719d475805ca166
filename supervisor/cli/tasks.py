"""`fleet tasks`: the fleet at a glance, on one screen whatever the number of tasks.

By default: every running agent, what waits (and why), what ended lately, and one line of counts
by status. `--all`, `--status`, `--role` and `--limit` list other slices; `--json` gives the rows;
`--watch` keeps a full-screen view live (supervisor/cli/watch.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import click

from supervisor.cli.main import color, emit_json, open_store
from supervisor.cli.output import clean
from supervisor.errors import BadInput

STATUSES = ("open", "in_progress", "blocked", "deferred", "closed", "pinned")
COLORS = {"in_progress": "yellow", "blocked": "red", "closed": "bright_black", "open": "green"}
HEADERS = (
    "ID",
    "STATUS",
    "CODER",
    "ACCOUNT",
    "TRY",
    "ELAPSED",
    "IDLE",
    "IN",
    "OUT",
    "COST",
    "CHANGED",
    "TITLE",
    "CWD",
    "WHY",
)
STRETCH = ("TITLE", "WHY")  # cut to the width left by the others
CHROME = 4  # screen lines around the rows: the banner, the header, the summary, the prompt


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Every task, closed ones included.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Only tasks in this status (repeatable; comma-separated works too).",
)
@click.option("--role", default="", help="Only tasks of this role.")
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), default=None, help="At most this many rows."
)
@click.option("--watch", is_flag=True, help="A full-screen view that stays live (Ctrl-C to stop).")
@click.option(
    "--json", "as_json", is_flag=True, help="The rows as JSON (not-closed tasks by default)."
)
@click.pass_context
def tasks(
    ctx: click.Context,
    show_all: bool,
    statuses: Sequence[str],
    role: str,
    limit: int | None,
    watch: bool,
    as_json: bool,
) -> None:
    """Every agent at a glance: what runs, what waits and why, what ended, counts by status."""
    wanted = _statuses(statuses)
    store = open_store(ctx)
    if watch:
        if as_json:
            raise BadInput("--watch and --json do not go together", hint="fleet tasks --json")
        if not sys.stdout.isatty():
            raise BadInput(
                "--watch draws on a terminal, and the output is not one",
                hint="run it in a terminal, or `fleet tasks` for one view",
            )
        from supervisor.cli.watch import run as watch_live

        watch_live(store, role=role)
        return
    from supervisor.cli import overview

    if as_json or show_all or wanted or limit is not None:
        if wanted is None and not show_all:
            wanted = ["open", "in_progress", "blocked", "deferred"] if as_json else None
        rows = overview.select(store, wanted, role, limit or 0)
        if as_json:
            emit_json(rows)
            return
        width = screen_width()
        click.echo(render(rows, width) if rows else "no tasks")
        found = overview.Overview(rows, [], [], _counts(store, role), 0, 0, True)
        click.echo(overview.summary(found))
        return
    height = shutil.get_terminal_size((100, 24)).lines
    found = overview.build(store, budget=max(height - CHROME, 5), role=role)
    text = screen(found, screen_width())
    click.echo(text)


def _counts(store: Any, role: str) -> dict[str, int]:
    from supervisor.store import overview as sql

    return sql.counts(store.cache, role)


def screen(found: Any, width: int | None) -> str:
    """The default view: the banner (if nothing runs the ready tasks), the table, the summary."""
    from supervisor.cli import overview

    lines = []
    if banner := overview.banner(found):
        lines.append(color(banner, "cyan"))
    rows = found.rows()
    if rows:
        lines.append(render(rows, width))
    lines.append(with_hint(overview.summary(found), len(rows), sum(found.more.values()), width))
    return "\n".join(lines)


def with_hint(summary: str, shown: int, left: int, width: int | None) -> str:
    """The summary line and, as it fits, how many rows are shown and how to see the rest."""
    if not left:
        return summary
    for hint in (
        f"; showing {shown} (`fleet tasks --all` for all)",
        f"; {shown} shown, --all for all",
        "; --all for all",
    ):
        if width is None or len(summary + hint) <= width:
            return summary + hint
    return summary


def _statuses(given: Sequence[str]) -> list[str] | None:
    if not given:
        return None
    out = []
    for part in ",".join(given).split(","):
        name = part.strip().replace("-", "_")
        name = "in_progress" if name == "running" else name
        if name not in STATUSES:
            raise BadInput(
                f"--status {part.strip()!r} is not a status",
                hint="choose from " + ", ".join(STATUSES) + " (or running)",
            )
        out.append(name)
    return out


def screen_width() -> int | None:
    """The terminal's width; None when writing to a pipe or a file (nothing is cut) unless
    COLUMNS says otherwise."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def cells(r: dict[str, Any]) -> list[str]:
    """One row's cells, as text."""
    coder = "/".join(x for x in (r["coder"], r["model"]) if x)
    return [
        r["id"],
        r["status"],
        coder,
        r["account"] or "",
        str(r["attempt"] or ""),
        duration(r["elapsed"]) if r["elapsed"] else "",
        duration(r["idle"]) if r["idle"] is not None else "",
        count(r["tokens_in"]),
        count(r["tokens_out"]),
        f"${r['cost_usd']:.2f}" if r["cost_usd"] else "",
        _changed(r),
        r["title"],
        short_path(r["cwd"] or ""),
        r["why"] if r["status"] != "in_progress" else "",
    ]


def _changed(r: dict[str, Any]) -> str:
    """Files and lines the task's work changed, as `2f +10 -3` ("" when it recorded none)."""
    if not r.get("files"):
        return ""
    return f"{r['files']}f +{r.get('added', 0)} -{r.get('deleted', 0)}"


def render(rows: list[dict[str, Any]], width: int | None) -> str:
    """A plain table that hides the columns empty in every row and cuts TITLE and WHY so that
    each line fits `width` (None: no cut)."""
    body = [[clean(c) for c in cells(r)] for r in rows]  # control characters shown as escapes
    keep = [i for i, h in enumerate(HEADERS) if any(line[i] for line in body)]
    heads = [HEADERS[i] for i in keep]
    body = [[line[i] for i in keep] for line in body]
    widths = [max(len(h), *(len(line[c]) for line in body)) for c, h in enumerate(heads)]
    if width is not None:
        widths = fit(heads, widths, width)
    out = [_line(heads, widths).rstrip()]
    for r, line in zip(rows, body, strict=True):
        text = [cut(v, w) for v, w in zip(line, widths, strict=True)]
        status_at = heads.index("STATUS")
        painted = _line(text, widths).rstrip()
        if status_at >= 0 and r["status"] in COLORS:
            word = text[status_at].ljust(widths[status_at])
            start = sum(widths[:status_at]) + 2 * status_at
            painted = (
                painted[:start] + color(word, COLORS[r["status"]]) + painted[start + len(word) :]
            )
        out.append(painted)
    return "\n".join(out)


def fit(heads: list[str], widths: list[int], width: int) -> list[int]:
    """Shrink the stretchable columns (TITLE, then WHY share what is left) to fit `width`."""
    gaps = 2 * (len(heads) - 1)
    fixed = sum(w for h, w in zip(heads, widths, strict=True) if h not in STRETCH)
    room = width - gaps - fixed
    stretch = [i for i, h in enumerate(heads) if h in STRETCH]
    if not stretch:
        return widths
    need = sum(widths[i] for i in stretch)
    if need <= room:
        return widths
    out = list(widths)
    if len(stretch) == 1:
        out[stretch[0]] = max(room, 8)
        return out
    title, why = stretch
    half = max(room // 2, 8)
    if widths[title] <= half:
        out[why] = max(room - widths[title], 8)
    elif widths[why] <= half:
        out[title] = max(room - widths[why], 8)
    else:
        out[title], out[why] = half, max(room - half, 8)
    return out


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def short_path(path: str) -> str:
    """A working directory as short as it stays clear: ~ for the home, the last two parts."""
    home = os.path.expanduser("~")
    if home != "/" and (path == home or path.startswith(home + "/")):
        path = "~" + path[len(home) :]
    parts = path.split("/")
    return path if len(parts) <= 4 else "…/" + "/".join(parts[-2:])


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def count(n: int) -> str:
    return "" if not n else f"{n / 1000:.1f}k" if n >= 1000 else str(n)
