"""`fleet doctor context [DIR]`: what the coders in use load into every session, what of it is
loaded twice or too big, what that costs per session and per day, and the fix."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store, table
from supervisor.errors import BadInput

RATE_DAYS = 7  # the fleet's current rate: sessions per day over this many days


@click.group()
def doctor() -> None:
    """Find what makes the fleet slower or dearer than it needs to be."""


@doctor.command("context")
@click.argument(
    "directory",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--coder",
    "coders",
    multiple=True,
    help="Look at this coder (repeatable; default: the coders the fleet uses).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="An instruction file above this many tokens is reported as oversized.",
)
@click.option("--json", "as_json", is_flag=True, help="Items and findings as JSON.")
@click.pass_context
def context(
    ctx: click.Context,
    directory: Path | None,
    coders: tuple[str, ...],
    max_tokens: int,
    as_json: bool,
) -> None:
    """What each coder loads into every session started in DIR (default: here): instruction
    files up the tree and in the home, skills, agents, plugins, MCP servers; duplicates and
    oversized items with their tokens per session and per day, and how to fix each."""
    from supervisor.cli import context as found_in

    for name in coders:
        if name not in found_in.CODERS:
            raise BadInput(
                f"--coder {name!r} loads no context files fleet knows of",
                hint="choose from " + ", ".join(found_in.CODERS),
            )
    store = open_store(ctx)
    cwd = (directory or Path.cwd()).resolve()
    rate = sessions_per_day(store)
    in_use = list(coders) or coders_in_use(store, rate)
    scan = found_in.scan(in_use, cwd, Path.home(), account_dirs(store), max_tokens)
    for finding in scan.findings:
        per_day = rate.get(finding.coder)
        finding.per_day = round(finding.tokens * per_day) if per_day is not None else None
    if as_json:
        emit_json(
            {
                "directory": str(cwd),
                "coders": in_use,
                "sessions_per_day": {c: rate.get(c) for c in in_use},
                "items": _unique_items(scan.items),
                "findings": [f.to_dict() for f in scan.findings],
            }
        )
        return
    text = report(cwd, in_use, rate, scan)
    home = str(Path.home())
    click.echo(text.replace(home + "/", "~/") if home != "/" else text)


def report(cwd: Path, coders: list[str], rate: dict[str, float], scan: Any) -> str:
    lines = [f"context loaded into every session started in {cwd}", ""]
    items = _unique_items(scan.items)
    rows = []
    for coder in coders:
        mine = [i for i in items if i["coder"] == coder]
        per = rate.get(coder)
        total = sum(i["tokens"] or 0 for i in mine)
        servers = sum(1 for i in mine if i["kind"] == "mcp")
        day = f"{round(total * per):,}" if per is not None else "-"
        rows.append(
            [coder, len(mine) - servers, servers, f"{total:,}", f"{per:g}" if per else "-", day]
        )
    lines.append(
        table(
            rows, ["CODER", "FILES", "MCP SERVERS", "TOKENS/SESSION", "SESSIONS/DAY", "TOKENS/DAY"]
        )
    )
    lines.append("")
    if items:
        lines.append(
            table(
                [
                    [i["coder"], i["kind"], i["name"] or "", _tok(i["tokens"]), i["path"]]
                    for i in items
                ],
                ["CODER", "KIND", "NAME", "TOKENS", "PATH"],
            )
        )
        lines.append("")
    if not scan.findings:
        lines.append("no duplicates, nothing oversized")
        return "\n".join(lines)
    lines.append(f"{len(scan.findings)} finding{'s' if len(scan.findings) != 1 else ''}:")
    for f in scan.findings:
        cost = f"{f.tokens:,} tokens/session" if f.tokens else "tools load twice"
        if f.per_day is not None and f.tokens:
            cost += f", {f.per_day:,}/day"
        lines.append(f"- {f.coder}: {f.kind} ({cost})")
        lines.append(f"  fix: {f.fix}")
    if not any(rate.get(c) for c in coders):
        lines.append("(per day: no attempts in the last 7 days to take a rate from)")
    return "\n".join(lines)


def _tok(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _unique_items(items: list[Any]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for item in items:
        key = (item.coder, item.kind, item.path, item.name)
        if key not in seen:
            seen.add(key)
            out.append(item.to_dict())
    return out


def sessions_per_day(store: Any, now: float | None = None) -> dict[str, float]:
    """Attempts started per day by each coder, over the last week (every attempt is a session)."""
    from supervisor.cli import views
    from supervisor.model import Task, parse_time

    now = now or time.time()
    since = now - RATE_DAYS * 86400
    counts: dict[str, int] = {}
    store.cache.sync()
    for body in store.cache.select(None):
        task = Task.from_dict(body)
        running = [views.live_status(store, task)] if task.run is not None else []
        runs = [*task.attempts, *running]
        for attempt in runs:
            started = str(attempt.get("started_at") or "")
            try:
                if not started or parse_time(started) < since:
                    continue
            except ValueError:
                continue
            coder = str(attempt.get("coder") or task.coder or "")
            counts[coder] = counts.get(coder, 0) + 1
    return {coder: round(n / RATE_DAYS, 2) for coder, n in counts.items()}


def coders_in_use(store: Any, rate: dict[str, float]) -> list[str]:
    """The agent coders the fleet ran lately, is set to run, or has accounts for (all four
    when it names none)."""
    from supervisor.cli import context as found_in
    from supervisor.queue import configure

    config = configure.current(store)
    named = set(rate) | {config.coder} | {a.coder for a in config.accounts.values()}
    store.cache.sync()
    row = store.cache.db.execute("SELECT group_concat(DISTINCT coder) FROM tasks").fetchone()
    named |= set((row[0] or "").split(","))
    used = [c for c in found_in.CODERS if c in named]
    return used or list(found_in.CODERS)


def account_dirs(store: Any) -> dict[str, list[Path]]:
    """Each coder's account configuration directories (CLAUDE_CONFIG_DIR, CODEX_HOME, ...)."""
    from supervisor import accounts
    from supervisor.queue import configure

    out: dict[str, list[Path]] = {}
    for account in configure.current(store).accounts.values():
        folder = accounts.config_dir(account)
        if folder is not None:
            out.setdefault(account.coder, []).append(folder)
    return out
