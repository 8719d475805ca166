"""Governance commands: `fleet log --verify`, `fleet eval`, `fleet risk`, `fleet quarantine`,
`fleet release`."""

from __future__ import annotations

from typing import Any

import click

from supervisor.cli.main import color, emit_json


def verify_log(store: Any, as_json: bool) -> None:
    """Print the audit verification; exit 1 when the history is not the one fleet wrote."""
    from supervisor.store.audit import verify

    report = verify(store)
    if as_json:
        emit_json(report.to_dict())
    else:
        for problem in report.problems:
            click.echo(f"{color('FAIL', 'red')} {problem.kind}: {problem.detail}")
        older = f", {report.before_journal} older than the journal" if report.before_journal else ""
        click.echo(
            f"{report.commits} commits in refs/heads/main, {report.recorded} recorded{older};"
            f" head {report.head[:12] or '(none)'}"
        )
        if report.anchor:
            click.echo(f"journal anchor: {report.anchor} (note it elsewhere to pin this history)")
        click.echo(
            color("verified: the history is the one fleet wrote", "green")
            if report.ok
            else color(f"NOT verified: {len(report.problems)} problem(s)", "red")
        )
    if not report.ok:
        from supervisor.errors import FleetError

        raise FleetError(
            "the store's history is not the one fleet wrote",
            hint="see the problems above; fleet's own record is $FLEET_HOME/audit/journal",
        )


def since_time(since: str, now: float) -> float | None:
    """`--since`: a date, a time, or a span back from now (`7d`, `12h`); None for all time."""
    from supervisor.errors import BadInput
    from supervisor.model import parse_time

    if not since:
        return None
    units = {"d": 86400, "h": 3600, "m": 60}
    if since[-1:] in units and since[:-1].isdigit():
        return now - int(since[:-1]) * units[since[-1]]
    try:
        return parse_time(since if "T" in since else since + "T00:00:00Z")
    except ValueError:
        raise BadInput(
            f"--since {since!r} is neither a date nor a span",
            hint="--since 2026-11-01 or --since 7d",
        ) from None


EVAL_HEADERS = [
    "CLOSED",
    "ATTEMPTS",
    "SUCCESS",
    "RETRIES",
    "STALLS",
    "APPROVED",
    "CHECKS",
    "REOPENED",
    "TIME/CLOSED",
    "TOKENS/CLOSED",
    "COST/CLOSED",
    "HANDOFFS",
]


@click.command("eval")
@click.option(
    "--by",
    type=click.Choice(["role", "coder", "model", "account"]),
    default="coder",
    show_default=True,
    help="One scorecard per value of this.",
)
@click.option("--since", default="", help="Only attempts ended since: a date or a span (7d).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def eval_cmd(ctx: click.Context, by: str, since: str, as_json: bool) -> None:
    """Scorecards: throughput, reliability, quality, efficiency, collaboration and a verdict."""
    import time

    from supervisor.cli.main import open_store, table
    from supervisor.model import iso
    from supervisor.store import attempts

    start = since_time(since, time.time())
    store = open_store(ctx)
    table_ = attempts.Attempts(store.cache, store.home / "cache")
    try:
        cards = [c.to_dict() for c in table_.cards(by, iso(start) if start is not None else "")]
    finally:
        table_.close()
    if as_json:
        emit_json({"by": by, "since": since or None, "cards": cards})
        return
    if not cards:
        click.echo("no attempts on record" + (f" since {since}" if since else ""))
        return
    rows = []
    for c in cards:
        rel, qual, eff = c["reliability"], c["quality"], c["efficiency"]
        rate = "" if rel["success_rate"] is None else f"{rel['success_rate']:.0%}"
        review = f"{qual['approved']}/{qual['approved'] + qual['rejected']}"
        checks = f"{qual['checks_passed']}/{qual['checks_passed'] + qual['checks_failed']}"
        per_cost = eff["cost_per_closed_usd"]
        per_time = eff["seconds_per_closed"]
        rows.append(
            [
                c["key"] or "-",
                c["throughput"]["closed"],
                c["throughput"]["attempts"],
                rate,
                rel["retries"],
                rel["stalls"],
                review,
                checks,
                qual["reopened"],
                "" if per_time is None else f"{per_time:.0f}s",
                "" if eff["tokens_per_closed"] is None else f"{eff['tokens_per_closed']:.0f}",
                "" if per_cost is None else f"${per_cost:.4f}",
                c["collaboration"]["handoffs_accepted"],
            ]
        )
    headers = [by.upper(), *EVAL_HEADERS]
    click.echo(table(rows, headers))
    click.echo("")
    for c in cards:
        click.echo(f"{c['key'] or '-'}: {c['verdict']}")
