"""Governance commands: `fleet log --verify`, `fleet eval`, `fleet risk`, `fleet quarantine`,
`fleet release`."""

from __future__ import annotations

import json
from typing import Any

import click

from supervisor.cli.main import color, emit_json


def verify_log(store: Any, as_json: bool) -> None:
    """Print the audit verification; exit 1 when the history is not the one fleet wrote."""
    from supervisor.queue import configure
    from supervisor.store import signing
    from supervisor.store.audit import verify

    report = verify(store, signer=signing.key_path(configure.current(store).signing_key))
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
@click.option("--json", "as_json", is_flag=True, help="The scorecards as JSON.")
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


def _subject(store: Any, name: str) -> str:
    """NAME as kind:name: given so, or the account, role, coder or task of that name."""
    from supervisor.errors import BadInput
    from supervisor.queue import configure
    from supervisor.store import quarantine

    if ":" in name:
        return quarantine.check(name)
    config = configure.current(store)
    import coders

    found = [
        kind
        for kind, known in (
            ("account", name in config.accounts),
            ("role", name in config.roles),
            ("coder", name in coders.names()),
            ("task", store.cache.get(name) is not None if quarantine.NAME.match(name) else False),
        )
        if known
    ]
    if len(found) == 1:
        return f"{found[0]}:{name}"
    if not found:
        raise BadInput(
            f"no account, role, coder or task is named {name!r}",
            hint="name it as account:NAME, role:NAME, coder:NAME or task:ID",
        )
    raise BadInput(
        f"{name!r} names a {' and a '.join(found)}",
        hint=f"say which: {', '.join(f'{k}:{name}' for k in found)}",
    )


@click.command("quarantine")
@click.argument("name")
@click.option("--reason", required=True, help="Why: recorded with the decision.")
@click.option("--json", "as_json", is_flag=True, help="The decision as JSON.")
@click.pass_context
def quarantine_cmd(ctx: click.Context, name: str, reason: str, as_json: bool) -> None:
    """Give an account, role, coder or task no new claims (NAME or kind:NAME)."""
    import time

    from supervisor.cli.main import open_store
    from supervisor.errors import BadInput
    from supervisor.store import quarantine
    from supervisor.store.store import user_actor

    if not reason.strip():
        raise BadInput("--reason is empty", hint='say why: --reason "deletes tests"')
    store = open_store(ctx)
    subject = _subject(store, name)
    if not quarantine.add(store, subject, reason, user_actor(), time.time()):
        raise BadInput(f"{subject} is quarantined already", hint=f"`fleet release {subject}`")
    if as_json:
        click.echo(json.dumps({"quarantined": subject, "reason": reason}))
        return
    click.echo(f"quarantined {subject}: {reason}")


@click.command("release")
@click.argument("name")
@click.option("--reason", default="", help="Why: recorded with the decision.")
@click.option("--json", "as_json", is_flag=True, help="The decision as JSON.")
@click.pass_context
def release_cmd(ctx: click.Context, name: str, reason: str, as_json: bool) -> None:
    """Lift a quarantine (NAME or kind:NAME)."""
    from supervisor.cli.main import open_store
    from supervisor.store import quarantine
    from supervisor.store.store import user_actor

    store = open_store(ctx)
    subject = name if ":" in name else _subject(store, name)
    quarantine.release(store, subject, user_actor(), reason)
    if as_json:
        click.echo(json.dumps({"released": subject, "reason": reason}))
        return
    click.echo(f"released {subject}")


@click.command("risk")
@click.option("--json", "as_json", is_flag=True, help="The scores and their evidence as JSON.")
@click.pass_context
def risk_cmd(ctx: click.Context, as_json: bool) -> None:
    """Risk scores of accounts, roles and running agents, with their evidence."""
    import time

    from supervisor.cli.main import open_store, table
    from supervisor.queue import configure
    from supervisor.run.governor import assess, live_from_store
    from supervisor.store import quarantine
    from supervisor.store.attempts import Attempts

    store = open_store(ctx)
    config = configure.current(store)
    held = quarantine.read(store, store.head())
    attempts = Attempts(store.cache, store.home / "cache")
    try:
        found = assess(attempts, config, live_from_store(store), time.time())
    finally:
        attempts.close()
    if as_json:
        emit_json(
            {
                "threshold": config.risk_threshold,
                "subjects": [{**a.to_dict(), "quarantined": held.get(a.subject)} for a in found],
                "quarantined": held,
            }
        )
        return
    if not found and not held:
        click.echo("no attempts on record and nothing quarantined")
        return
    rows = []
    for a in found:
        mark = "QUARANTINED" if a.subject in held else ""
        score = f"{a.score:.2f}"
        if a.score >= config.risk_threshold:
            score = color(score, "red")
        rows.append([a.subject, score, mark, a.explain().partition(": ")[2]])
    click.echo(table(rows, ["SUBJECT", "RISK", "", "SIGNALS"]))
    for subject, record in sorted(held.items()):
        click.echo(f"\n{subject} quarantined {record.get('at', '')} by {record.get('by', '')}:"
                   f" {record.get('reason', '')}")  # fmt: skip
        for line in record.get("evidence") or []:
            click.echo(f"  - {line}")
    for a in found:
        if a.score >= config.risk_threshold and a.subject not in held and a.evidence:
            click.echo(f"\n{a.subject} ({a.score:.2f}):")
            for line in a.evidence[:10]:
                click.echo(f"  - {line}")
