"""`fleet accounts` and `fleet usage`: credentials, their limits, and what the fleet spent."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from supervisor.cli.main import emit_json, open_store, table
from supervisor.cli.numbers import duration, money, tokens
from supervisor.errors import BadInput


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="The accounts as JSON.")
@click.pass_context
def accounts(ctx: click.Context, as_json: bool) -> None:
    """Each account: available, limited until T, near its limit, disabled; agents; usage today."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _rows(open_store(ctx))
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(
            "no accounts: agents run with the supervisor's environment (`fleet accounts add`)"
        )
        return
    body = [
        [
            r["name"],
            r["coder"],
            r["status"] + (f" (${r['key_env']} is not set here)" if r["key_missing"] else ""),
            r["running"],
            r["max_concurrent"] or "",
            tokens(r["tokens_today"]),
            money(r["cost_today"]),
        ]
        for r in rows
    ]
    click.echo(
        table(body, ["ACCOUNT", "CODER", "STATE", "RUNNING", "MAX", "TOKENS TODAY", "COST TODAY"])
    )


def _rows(store: Any) -> list[dict[str, Any]]:
    from supervisor import accounts as acc
    from supervisor import budgets
    from supervisor.model import Task
    from supervisor.queue import configure

    now = time.time()
    cfg = configure.current(store)
    names = sorted(cfg.accounts)
    snap = store.snapshot()
    states = {n: acc.State.from_bytes(snap.read(acc.state_path(n))) for n in names}
    tasks = [Task.from_dict(b) for b in store.cache.updated_since(budgets.day_start(now))]
    running = [Task.from_dict(b) for b in store.cache.select(["in_progress"])]
    day = budgets.today(tasks, [], now)
    out = []
    for name in names:
        account = cfg.accounts[name]
        described = acc.describe(states[name], account, cfg.limit_threshold, now)
        out.append(
            {
                "name": name,
                "coder": account.coder,
                **described,
                "running": sum(1 for t in running if t.run is not None and t.run.account == name),
                "max_concurrent": account.max_concurrent,
                "tokens_today": day.tokens.get(name, 0),
                "cost_today": round(day.cost.get(name, 0.0), 6),
                "config_dir": account.config_dir,
                "key_env": account.key_env,
                "key_missing": bool(account.key_env) and not os.environ.get(account.key_env),
                "key_as": account.key_as,
            }
        )
    return out


@accounts.command("add")
@click.argument("name")
@click.option("--coder", required=True, help="The coder whose agents use it (claude, codex, ...).")
@click.option(
    "--config-dir", default="", help="Its CLAUDE_CONFIG_DIR / CODEX_HOME / ... directory."
)
@click.option(
    "--key-env", default="", help="The variable holding its key (the key is never stored)."
)
@click.option(
    "--key-as",
    default="",
    metavar="VAR",
    help="The agent's variable the key goes in (default: the coder's, e.g. ANTHROPIC_API_KEY;"
    " CLAUDE_CODE_OAUTH_TOKEN for a Claude subscription token).",
)
@click.option(
    "--env", "env", multiple=True, metavar="K=V", help="An extra variable for its agents."
)
@click.option("--max-concurrent", type=click.IntRange(min=1), help="Its agents at once.")
@click.option("--daily-max-cost", type=float, help="USD per UTC day.")
@click.option("--daily-max-tokens", type=click.IntRange(min=1), help="Tokens per UTC day.")
@click.option("--json", "as_json", is_flag=True, help="The account as JSON.")
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    coder: str,
    config_dir: str,
    key_env: str,
    key_as: str,
    env: tuple[str, ...],
    max_concurrent: int | None,
    daily_max_cost: float | None,
    daily_max_tokens: int | None,
    as_json: bool,
) -> None:
    """Add (or replace) an account; a running supervisor uses it at its next tick.

    \b
    fleet accounts add work --coder claude --config-dir ~/.claude-work \\
        --key-env ANTHROPIC_API_KEY_WORK
    """
    from supervisor.queue.configure import edit_entry
    from supervisor.secrets import refuse as refuse_secrets

    variables: dict[str, str] = {}
    for pair in env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(
                f"--env {pair!r} is not K=V",
                hint="--env ANTHROPIC_BASE_URL=https://gateway.internal",
            )
        variables[key] = value
    refuse_secrets(variables, f"--env of account {name}")
    if key_as:
        _check_key_as(coder, key_env, key_as)
    given: dict[str, Any] = {
        "config_dir": config_dir,
        "key_env": key_env,
        "key_as": key_as,
        "max_concurrent": max_concurrent,
        "daily_max_cost": daily_max_cost,
        "daily_max_tokens": daily_max_tokens,
    }
    entry: dict[str, Any] = {"coder": coder, **{k: v for k, v in given.items() if v}}
    if variables:
        entry["env"] = variables
    from supervisor.cli.checks import known_coder

    known_coder(coder)
    edit_entry(open_store(ctx), "accounts", name, entry, f"accounts: add {name} ({coder})")
    if key_env and not os.environ.get(key_env):
        click.echo(
            f"fleet: warning: ${key_env} is not set here: agents of {name} get no key unless the"
            " supervisor's environment sets it",
            err=True,
        )
    if as_json:
        emit_json({"name": name, **entry})
        return
    click.echo(f"account {name} added for {coder}")


def _check_key_as(coder_name: str, key_env: str, key_as: str) -> None:
    """`--key-as` must name one of the coder's credential variables, for a key `--key-env` gives."""
    import coders

    if not key_env:
        raise BadInput(
            "--key-as needs --key-env, the variable the key is read from",
            hint=f"--key-env MY_TOKEN --key-as {key_as}",
        )
    try:
        coder = coders.get(coder_name)
    except KeyError:
        return  # a coder fleet does not know yet: its variables cannot be checked
    known = {coder.key_env, coder.usage_limit_key_env, *getattr(coder, "credential_env", ())}
    known.discard("")
    if known and key_as not in known:
        raise BadInput(
            f"--key-as {key_as}: {coder_name} takes its key in {', '.join(sorted(known))}",
            hint=f"--key-as {coder.usage_limit_key_env or coder.key_env}",
        )


@accounts.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="What was removed, as JSON.")
@click.pass_context
def remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove an account (its agents that run now go on)."""
    from supervisor.queue.configure import edit_entry

    edit_entry(open_store(ctx), "accounts", name, None, f"accounts: remove {name}", must_exist=True)
    if as_json:
        emit_json({"name": name, "removed": True})
        return
    click.echo(f"account {name} removed")


def _toggle(ctx: click.Context, name: str, disabled: bool, as_json: bool = False) -> None:
    from supervisor.queue import configure

    store = open_store(ctx)
    current = configure.current(store).accounts.get(name)
    if current is None:
        raise BadInput(f"no account named {name!r}", hint="`fleet accounts` lists them")
    entry = current.model_dump(exclude_defaults=True) | {"coder": current.coder}
    if disabled:
        entry["disabled"] = True
    else:
        entry.pop("disabled", None)
    verb = "disable" if disabled else "enable"
    configure.edit_entry(
        store, "accounts", name, entry, f"accounts: {verb} {name}", must_exist=True
    )
    if as_json:
        emit_json({"name": name, "disabled": disabled})
        return
    click.echo(f"account {name} {verb}d")


@accounts.command("disable")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The account's state as JSON.")
@click.pass_context
def disable(ctx: click.Context, name: str, as_json: bool) -> None:
    """Dispatch nothing more to this account."""
    _toggle(ctx, name, True, as_json)


@accounts.command("enable")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The account's state as JSON.")
@click.pass_context
def enable(ctx: click.Context, name: str, as_json: bool) -> None:
    """Dispatch to this account again."""
    _toggle(ctx, name, False, as_json)


@click.command()
@click.option(
    "--by",
    type=click.Choice(["task", "coder", "model", "account", "role", "day"]),
    default="coder",
    show_default=True,
    help="Group by this.",
)
@click.option(
    "--since", default="", help="Only attempts that ended on or after this date (YYYY-MM-DD)."
)
@click.option("--json", "as_json", is_flag=True, help="The groups and the total as JSON.")
@click.pass_context
def usage(ctx: click.Context, by: str, since: str, as_json: bool) -> None:
    """What the fleet spent: tokens, cost, time, success rate, cost per successful task."""
    from supervisor import ledger
    from supervisor.model import Task, parse_time

    start = None
    if since:
        try:
            start = parse_time(since if "T" in since else since + "T00:00:00Z")
        except ValueError:
            raise BadInput(f"--since {since!r} is not a date", hint="--since 2026-11-01") from None
    store = open_store(ctx)
    store.cache.sync()
    tasks = [Task.from_dict(b) for b in store.cache.select(None)]
    lines = ledger.aggregate(tasks, by, start)
    total = ledger.total(lines)
    if as_json:
        emit_json(
            {
                "by": by,
                "since": since or None,
                "lines": [x.to_dict() for x in lines],
                "total": total.to_dict(),
            }
        )
        return
    rows = []
    for line in [*lines, total]:
        d = line.to_dict()
        rate = "" if d["success_rate"] is None else f"{d['success_rate']:.0%}"
        rows.append(
            [
                d["key"] or "-",
                d["attempts"],
                rate,
                tokens(d["input_tokens"]),
                tokens(d["output_tokens"]),
                tokens(d["cache_read_tokens"]),
                tokens(d["cache_write_tokens"]),
                money(d["cost_usd"]),
                duration(d["seconds"]),
                money(d["cost_per_success_usd"]),
            ]
        )
    click.echo(
        table(
            rows,
            [
                by.upper(),
                "ATTEMPTS",
                "SUCCESS",
                "IN",
                "OUT",
                "CACHE READ",
                "CACHE WRITE",
                "COST",
                "TIME",
                "COST/SUCCESS",
            ],
        )
    )
