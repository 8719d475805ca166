"""`fleet tasks --watch`: the default view of `fleet tasks`, full screen and live, drawn with rich.

Each frame reads only what fits on the screen (the counts and one page of rows, in SQL over the
cache), so a frame costs the same with 10 tasks or 10,000, and with 50 running agents.
"""

from __future__ import annotations

import time
from typing import Any

from supervisor.store.store import Store

REFRESH_SECONDS = 1.0
CHROME = 5  # lines around the rows: title, banner, table header, table rule, summary


def frame(store: Store, height: int, width: int, role: str = "", now: float | None = None) -> Any:
    """One screen: title, banner, the table of what runs, waits and ended, the summary line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from supervisor.cli import overview
    from supervisor.cli.tasks import COLORS, HEADERS, cells, fit, with_hint

    found = overview.build(store, budget=max(height - CHROME, 3), role=role, now=now)
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    parts: list[Any] = [
        Text.assemble(
            ("fleet tasks", "bold"), f"   {stamp}   {store.home}   ", ("Ctrl-C to quit", "dim")
        )
    ]
    if banner := overview.banner(found):
        parts.append(Text(banner, style="cyan"))
    rows = found.rows()
    body = [cells(r) for r in rows]
    keep = [i for i, h in enumerate(HEADERS) if any(line[i] for line in body)] or [0, 1]
    heads = [HEADERS[i] for i in keep]
    natural = [
        max(len(h), *(len(line[i]) for line in body)) for h, i in zip(heads, keep, strict=True)
    ]
    widths = fit(heads, natural, width)
    table = Table(
        box=None, pad_edge=False, header_style="bold", show_edge=False, padding=(0, 2, 0, 0)
    )
    for head, w in zip(heads, widths, strict=True):
        table.add_column(head, no_wrap=True, overflow="ellipsis", width=w)
    for r, line in zip(rows, body, strict=True):
        style = {"bright_black": "bright_black"}.get(COLORS.get(r["status"], ""), "")
        cells_shown = [line[i] for i in keep]
        table.add_row(
            *[
                Text(v, style=COLORS.get(r["status"], "")) if HEADERS[i] == "STATUS" else Text(v)
                for v, i in zip(cells_shown, keep, strict=True)
            ],
            style=style or None,
        )
    parts.append(table)
    last = with_hint(overview.summary(found), len(rows), sum(found.more.values()), width)
    parts.append(Text(last, style="bold"))
    return Group(*parts)


def run(store: Store, role: str = "", refresh: float = REFRESH_SECONDS) -> None:
    """Redraw every `refresh` seconds until Ctrl-C, on the terminal's alternate screen."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
        try:
            while True:
                live.update(
                    frame(store, console.size.height, console.size.width, role), refresh=True
                )
                time.sleep(refresh)
        except KeyboardInterrupt:
            return
