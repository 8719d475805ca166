"""`fleet coders`: which coders there are, whether their CLIs are installed, and a canary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from supervisor.cli.main import emit_json, table
from supervisor.errors import BadInput, FleetError

if TYPE_CHECKING:
    from coders.check.trial import Runner
    from supervisor.run.process import Processes


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="The coders as JSON.")
@click.pass_context
def coders(ctx: click.Context, as_json: bool) -> None:
    """Each coder: its binary on PATH, its version, whether it is verified against the real CLI."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [_describe(name) for name in _names()]
    if as_json:
        emit_json(rows)
        return
    body = [
        [
            r["name"],
            r["binary"] or "-",
            r["path"] or "not found",
            r["version"] or "",
            "yes" if r["verified"] else "no",
            r.get("error", ""),
        ]
        for r in rows
    ]
    click.echo(table(body, ["CODER", "BINARY", "PATH", "VERSION", "VERIFIED", ""]))


def _names() -> list[str]:
    import coders as registry

    return registry.names()


def _describe(name: str) -> dict[str, Any]:
    import coders as registry
    from coders.base import version_of, which

    try:
        coder = registry.get(name)
    except Exception as exc:  # a third-party coder that fails to load is reported, not fatal
        return {
            "name": name,
            "binary": "",
            "path": None,
            "version": None,
            "verified": False,
            "error": f"cannot load: {exc}",
        }
    path = which(coder.binary) if coder.binary else None
    return {
        "name": name,
        "binary": coder.binary,
        "path": path,
        "version": version_of(coder.binary) if path and name != "shell" else None,
        "verified": coder.verified,
        "default_model": coder.default_model,
    }


@coders.command()
@click.argument("name")
@click.option(
    "--case",
    "cases",
    multiple=True,
    help="Only this case (repeatable): ok, rate_limit, usage_limit, auth, overloaded.",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per case.")
@click.option("--json", "as_json", is_flag=True, help="The cases' results as JSON.")
def check(name: str, cases: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Run the installed CLI of NAME against fleet's mock model server, case by case."""
    from coders.check.harness import CheckError
    from coders.check.harness import check as run_check

    try:
        results = run_check(name, list(cases) or None, runner=seam_runner(), timeout=timeout)
    except CheckError as exc:
        raise BadInput(str(exc), hint="`fleet coders` lists the coders and their CLIs") from None
    if as_json:
        emit_json([r.__dict__ for r in results])
    else:
        rows = [
            [r.case, "pass" if r.passed else "FAIL", f"{r.seconds:.1f}s", r.detail] for r in results
        ]
        click.echo(table(rows, ["CASE", "RESULT", "TIME", "DETAIL"]))
    if not all(r.passed for r in results):
        raise FleetError(f"{name}: {sum(not r.passed for r in results)} case(s) failed")


def seam_runner(processes: Processes | None = None) -> Runner:
    """The check harness's runner: the supervisor's process seam (`Processes`), so that a
    checked CLI starts, ends and is stopped exactly as a supervised agent is."""
    from supervisor.run.process import OsProcesses, run_to_end

    seam = processes or OsProcesses()

    def run(
        argv: list[str], env: dict[str, str], cwd: Path, timeout: float, logs: Path
    ) -> tuple[int, bool]:
        return run_to_end(seam, argv, env, cwd, timeout, logs)

    return run
