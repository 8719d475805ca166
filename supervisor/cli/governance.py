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
