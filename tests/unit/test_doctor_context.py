"""`fleet doctor context` on a fixture home and project with planted duplicates and oversized
files: every one is found, with its tokens per session and per day at the fleet's rate."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.model import iso
from supervisor.queue.mutations import NewTask, create
from supervisor.store.store import Change, Store

RULES = "# Rules\n\nAlways run the tests before you commit. " * 3 + "\n"
SECTION = (
    "## Deploying\n\nNever deploy on a Friday. Every deploy goes through the staging cluster"
    " first, waits for the smoke tests to pass, and is announced in the channel with the link"
    " to the change and the person who can roll it back. Rollbacks use the previous image tag.\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, Path]:
    """A home (HOME is tmp_path/user-home in every test) and a repository with its duplicates."""
    home = Path(os.environ["HOME"])
    repo = tmp_path / "repo"
    cwd = repo / "service"
    (repo / ".git").mkdir(parents=True)
    cwd.mkdir()
    paths = {
        "home_claude": write(home / ".claude" / "CLAUDE.md", RULES),
        "repo_claude": write(repo / "CLAUDE.md", RULES),  # 1: a copy of the home's
        "local": write(repo / "CLAUDE.local.md", "# Local\n\n" + SECTION),
        "service_claude": write(cwd / "CLAUDE.md", "# Service\n\nPort 8080.\n\n" + SECTION),
        "skill_home": write(
            home / ".claude" / "skills" / "pdf" / "SKILL.md",
            "---\nname: pdf\ndescription: Read and fill PDF forms.\n---\nLong body " * 20,
        ),
        "skill_project": write(
            cwd / ".claude" / "skills" / "pdf" / "SKILL.md",
            "---\nname: pdf\ndescription: Read and fill PDF forms.\n---\nOther body\n",
        ),
        "codex_home": write(home / ".codex" / "AGENTS.md", "Be brief.\n"),
        "agents_big": write(
            repo / "AGENTS.md", ("Describe every module in detail. " * 40 + "\n\n") * 30
        ),
        "gemini_home": write(home / ".gemini" / "GEMINI.md", RULES),
        "gemini_repo": write(repo / "GEMINI.md", RULES),
    }
    (cwd / ".claude" / "CLAUDE.md").symlink_to(cwd / "CLAUDE.md")  # 2: one file read twice
    server = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}
    write(home / ".claude.json", json.dumps({"mcpServers": {"github": server}}))
    write(cwd / ".mcp.json", json.dumps({"mcpServers": {"gh": server}}))
    paths["cwd"] = cwd
    paths["home"] = home
    return paths


def seed_rate(store: Store, coder: str, attempts: int) -> None:
    """`attempts` sessions of `coder` over the last week, as the supervisor records them."""
    task = create(store, NewTask(title="history", coder=coder, command="true", cwd="/tmp"))
    now = time.time()
    records = [
        {"n": i + 1, "outcome": "failure", "coder": coder, "started_at": iso(now - i * 3600)}
        for i in range(attempts)
    ]

    def build(snap: Any) -> tuple[Change, None]:
        found = snap.need(task.id)
        found.attempts = records
        change = Change("seed", "updated")
        change.put(found)
        return change, None

    store.mutate(build)


def findings(fleet: Any, *args: str) -> list[dict[str, Any]]:
    out = fleet("doctor", "context", *args, "--json")
    assert out.code == 0, out.err
    return list(json.loads(out.out)["findings"])


def test_every_planted_duplicate_is_found(
    store: Store, fleet: Any, planted: dict[str, Path]
) -> None:
    seed_rate(store, "claude", 14)  # 2 sessions a day
    seed_rate(store, "codex", 7)
    seed_rate(store, "gemini", 7)
    found = findings(fleet, str(planted["cwd"]), "--max-tokens", "2000")
    kinds = {(f["coder"], f["kind"]) for f in found}
    assert kinds == {
        ("claude", "duplicate file"),
        ("claude", "linked twice"),
        ("claude", "repeated section"),
        ("claude", "duplicate skill"),
        ("claude", "duplicate MCP server"),
        ("codex", "oversized"),
        ("codex", "truncated"),
        ("gemini", "duplicate file"),
    }
    by = {(f["coder"], f["kind"]): f for f in found}
    copy = by[("claude", "duplicate file")]
    assert set(copy["paths"]) == {str(planted["home_claude"]), str(planted["repo_claude"])}
    assert copy["tokens_per_session"] == (len(RULES) + 3) // 4
    assert copy["tokens_per_day"] == copy["tokens_per_session"] * 2
    assert "delete the other copies" in copy["fix"]
    linked = by[("claude", "linked twice")]
    assert str(planted["cwd"] / ".claude" / "CLAUDE.md") in linked["paths"]
    section = by[("claude", "repeated section")]
    assert set(section["paths"]) == {str(planted["local"]), str(planted["service_claude"])}
    assert section["tokens_per_session"] == (len(SECTION.split("\n\n", 1)[1]) + 3) // 4
    assert section["what"].startswith("Never deploy on a Friday")
    skill = by[("claude", "duplicate skill")]
    assert skill["what"] == "pdf" and len(skill["paths"]) == 2
    server = by[("claude", "duplicate MCP server")]
    assert "server-github" in server["what"] and "keep one" in server["fix"]
    big = by[("codex", "oversized")]
    assert big["paths"] == [str(planted["agents_big"])] and big["tokens_per_session"] > 2000
    assert big["tokens_per_day"] == big["tokens_per_session"]  # one session a day
    assert "32 KiB" in by[("codex", "truncated")]["fix"]
    assert set(by[("gemini", "duplicate file")]["paths"]) == {
        str(planted["gemini_home"]),
        str(planted["gemini_repo"]),
    }


def test_the_report_reads_for_people(store: Store, fleet: Any, planted: dict[str, Path]) -> None:
    seed_rate(store, "claude", 7)
    out = fleet("doctor", "context", str(planted["cwd"]), "--coder", "claude")
    assert out.code == 0, out.err
    text = out.out
    assert text.startswith(f"context loaded into every session started in {planted['cwd']}")
    assert "TOKENS/SESSION" in text and "SESSIONS/DAY" in text
    assert "5 findings:" in text
    assert "- claude: duplicate file (" in text and "tokens/session, " in text
    assert "fix: " in text and "codex" not in text.split("findings:")[1]
    assert f"keep {planted['repo_claude']} and delete".replace(str(planted["home"]), "~") in text
    assert "~/.claude/CLAUDE.md" in text and str(planted["home"]) not in text


def test_a_clean_setup_has_no_findings(tmp_path: Path, fleet: Any, store: Store) -> None:
    repo = tmp_path / "clean"
    (repo / ".git").mkdir(parents=True)
    write(repo / "CLAUDE.md", RULES)
    write(repo / "AGENTS.md", "Be brief.\n")
    out = fleet("doctor", "context", str(repo))
    assert out.code == 0, out.err
    assert out.out.rstrip().endswith("no duplicates, nothing oversized")
    data = json.loads(fleet("doctor", "context", str(repo), "--json").out)
    assert data["coders"] == ["claude"]  # tasks that name no coder run on claude
    assert [i["path"] for i in data["items"]] == [str(repo / "CLAUDE.md")]


def test_bad_input(fleet: Any, store: Store, tmp_path: Path) -> None:
    out = fleet("doctor", "context", "--coder", "shel")
    assert out.code == 2 and "fleet: --coder 'shel'" in out.err and "hint:" in out.err
    assert fleet("doctor", "context", str(tmp_path / "nowhere")).code == 2


def test_an_accounts_configuration_directory_is_looked_at_too(
    store: Store, fleet: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "proj"
    (repo / ".git").mkdir(parents=True)
    write(repo / "CLAUDE.md", RULES)
    account = tmp_path / "accounts" / "work"
    write(account / "CLAUDE.md", RULES)
    write(account / "skills" / "lint" / "SKILL.md", "---\nname: lint\ndescription: Lint.\n---\n")
    out = fleet("accounts", "add", "work", "--coder", "claude", "--config-dir", str(account))
    assert out.code == 0, out.err
    data = json.loads(fleet("doctor", "context", str(repo), "--json").out)
    paths = {i["path"] for i in data["items"]}
    assert str(account / "skills" / "lint" / "SKILL.md") in paths
    (copy,) = [f for f in data["findings"] if f["kind"] == "duplicate file"]
    assert set(copy["paths"]) == {str(account / "CLAUDE.md"), str(repo / "CLAUDE.md")}
