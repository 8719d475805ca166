"""What each coder loads into every session, found on disk, and what of it is loaded twice or is
too big: the facts behind `fleet doctor context`.

Where each CLI looks (its documentation, checked against the installed CLIs):

- claude: `CLAUDE.md`, `.claude/CLAUDE.md` and `CLAUDE.local.md` in the working directory and
  every directory above it; `<config>/CLAUDE.md` (config: `CLAUDE_CONFIG_DIR`, else
  `~/.claude`); files those import with `@path`; the name and description of every skill
  (`<config>/skills/*/SKILL.md`, `.claude/skills/*/SKILL.md`) and agent (`agents/*.md`);
  MCP servers of `~/.claude.json`, `.mcp.json` and installed plugins.
- codex: `<CODEX_HOME>/AGENTS.md` (or `AGENTS.override.md`; CODEX_HOME defaults to `~/.codex`),
  then `AGENTS.md` in every directory from the repository's root down to the working directory,
  at most 32 KiB of them together (`project_doc_max_bytes`); skills in `<CODEX_HOME>/skills`;
  `[mcp_servers.*]` of `<CODEX_HOME>/config.toml`.
- gemini: `~/.gemini/GEMINI.md`, `GEMINI.md` in every directory from the working directory up to
  the repository's root; extensions' context files; `mcpServers` of `~/.gemini/settings.json` and
  `.gemini/settings.json`.
- opencode: `~/.config/opencode/AGENTS.md`, `AGENTS.md` from the working directory up to the
  repository's root (`CLAUDE.md` where a directory has no `AGENTS.md`); `mcp` of `opencode.json`.

Tokens are estimated as characters / 4, the usual rule for English text and code: good to
compare items, not to bill. A skill costs its name and description in every session (its body
only when used). An MCP server costs its tools' schemas, which only a running server can tell:
servers are counted, not measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CODERS = ("claude", "codex", "gemini", "opencode")
CHARS_PER_TOKEN = 4
CODEX_DOC_LIMIT = 32 * 1024
PARAGRAPH_MIN = 200  # characters: shorter repeated paragraphs (headings, one-liners) are normal
_IMPORT = re.compile(r"^@(\S+)\s*$", re.M)


def tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass
class Item:
    coder: str
    kind: str  # instructions, skill, agent, mcp
    path: str
    text: str = ""  # what loads every session (a skill: its name and description)
    name: str = ""  # a skill's, agent's or MCP server's name
    identity: str = ""  # an MCP server's command or URL

    @property
    def tokens(self) -> int:
        return tokens(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "coder": self.coder,
            "kind": self.kind,
            "path": self.path,
            "name": self.name,
            "tokens": self.tokens if self.kind != "mcp" else None,
        }


@dataclass
class Finding:
    coder: str
    kind: str  # duplicate, linked twice, repeated section, oversized, truncated, ...
    paths: list[str]
    tokens: int  # wasted (or at stake) per session
    fix: str
    what: str = ""
    per_day: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "coder": self.coder,
            "kind": self.kind,
            "what": self.what,
            "paths": self.paths,
            "tokens_per_session": self.tokens,
            "tokens_per_day": self.per_day,
            "fix": self.fix,
        }


@dataclass
class Scan:
    items: list[Item] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


# -- where each coder looks -------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace") if path.is_file() else None
    except OSError:
        return None


def _ups(start: Path, stop_at_repo: bool) -> list[Path]:
    """`start` and the directories above it (to the repository's root when asked), outermost
    first."""
    out = []
    here = start.resolve()
    while True:
        out.append(here)
        if stop_at_repo and (here / ".git").exists():
            break
        if here.parent == here:
            if stop_at_repo:  # not in a repository: only the directory itself
                return [start.resolve()]
            break
        here = here.parent
    return list(reversed(out))


def _instructions(coder: str, path: Path, seen: set[Path] | None = None) -> list[Item]:
    """The file as an item, and for claude the files it imports with `@path` (once each)."""
    text = _read(path)
    if text is None:
        return []
    out = [Item(coder, "instructions", str(path), text)]
    if coder == "claude":
        seen = seen if seen is not None else {path.resolve()}
        for target in _IMPORT.findall(text):
            found = (path.parent / os.path.expanduser(target)).resolve()
            if found not in seen:
                seen.add(found)
                out += _instructions(coder, found, seen)
    return out


def _frontmatter(text: str) -> str:
    """A skill's or agent's name and description: the part every session carries."""
    match = re.match(r"^---\n(.*?)\n---", text, re.S)
    return match.group(1) if match else text[:300]


def _skills(coder: str, folder: Path, kind: str = "skill") -> list[Item]:
    if not folder.is_dir():
        return []
    pattern = "*/SKILL.md" if kind == "skill" else "*.md"
    out = []
    for path in sorted(folder.glob(pattern)):
        text = _read(path) or ""
        head = _frontmatter(text)
        name = re.search(r"^name:\s*(.+)$", head, re.M)
        label = (
            name.group(1).strip() if name else (path.parent.name if kind == "skill" else path.stem)
        )
        out.append(Item(coder, kind, str(path), head, name=label))
    return out


def _mcp(coder: str, where: Path, servers: Any) -> list[Item]:
    if not isinstance(servers, dict):
        return []
    out = []
    for name, spec in sorted(servers.items()):
        if not isinstance(spec, dict):
            continue
        command = spec.get("command") or spec.get("url") or ""
        args = spec.get("args") or []
        identity = " ".join([str(command), *map(str, args if isinstance(args, list) else [])])
        out.append(Item(coder, "mcp", str(where), name=str(name), identity=identity.strip()))
    return out


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def claude(cwd: Path, home: Path, config: Path | None = None) -> list[Item]:
    config = config or home / ".claude"
    items = _instructions("claude", config / "CLAUDE.md")
    for folder in _ups(cwd, stop_at_repo=False):
        if folder == home:
            continue  # ~/CLAUDE.md is not read; ~/.claude/CLAUDE.md is, above
        for name in ("CLAUDE.md", ".claude/CLAUDE.md", "CLAUDE.local.md"):
            items += _instructions("claude", folder / name)
    items += _skills("claude", config / "skills") + _skills("claude", cwd / ".claude" / "skills")
    items += _skills("claude", config / "agents", "agent")
    items += _skills("claude", cwd / ".claude" / "agents", "agent")
    plugins = config / "plugins"
    if plugins.is_dir():
        for skill_dir in sorted(plugins.glob("**/skills")):
            items += _skills("claude", skill_dir)
        for mcp_file in sorted(plugins.glob("**/.mcp.json")):
            items += _mcp("claude", mcp_file, _json(mcp_file).get("mcpServers"))
    user = _json(home / ".claude.json")
    items += _mcp("claude", home / ".claude.json", user.get("mcpServers"))
    project = (user.get("projects") or {}).get(str(cwd.resolve())) or {}
    items += _mcp("claude", home / ".claude.json", project.get("mcpServers"))
    items += _mcp("claude", cwd / ".mcp.json", _json(cwd / ".mcp.json").get("mcpServers"))
    return items


def codex(cwd: Path, home: Path, config: Path | None = None) -> list[Item]:
    config = config or Path(os.environ.get("CODEX_HOME") or home / ".codex")
    override = config / "AGENTS.override.md"
    items = _instructions("codex", override if override.is_file() else config / "AGENTS.md")
    for folder in _ups(cwd, stop_at_repo=True):
        local = folder / "AGENTS.override.md"
        items += _instructions("codex", local if local.is_file() else folder / "AGENTS.md")
    items += _skills("codex", config / "skills")
    text = _read(config / "config.toml")
    if text:
        import tomllib

        try:
            servers = tomllib.loads(text).get("mcp_servers")
        except ValueError:
            servers = None
        items += _mcp("codex", config / "config.toml", servers)
    return items


def gemini(cwd: Path, home: Path, config: Path | None = None) -> list[Item]:
    config = config or home / ".gemini"
    items = _instructions("gemini", config / "GEMINI.md")
    for folder in _ups(cwd, stop_at_repo=True):
        if folder != home:
            items += _instructions("gemini", folder / "GEMINI.md")
    extensions = config / "extensions"
    if extensions.is_dir():
        for manifest in sorted(extensions.glob("*/gemini-extension.json")):
            data = _json(manifest)
            name = str(data.get("contextFileName") or "GEMINI.md")
            items += _instructions("gemini", manifest.parent / name)
            items += _mcp("gemini", manifest, data.get("mcpServers"))
    for settings in (config / "settings.json", cwd / ".gemini" / "settings.json"):
        items += _mcp("gemini", settings, _json(settings).get("mcpServers"))
    return items


def opencode(cwd: Path, home: Path, config: Path | None = None) -> list[Item]:
    config = config or home / ".config" / "opencode"
    items = _instructions("opencode", config / "AGENTS.md")
    for folder in _ups(cwd, stop_at_repo=True):
        if folder == home:
            continue
        agents = folder / "AGENTS.md"
        items += _instructions("opencode", agents if agents.is_file() else folder / "CLAUDE.md")
    for settings in (config / "opencode.json", cwd / "opencode.json"):
        items += _mcp("opencode", settings, _json(settings).get("mcp"))
    return items


FINDERS = {"claude": claude, "codex": codex, "gemini": gemini, "opencode": opencode}


# -- what is wrong with it --------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _digest(text: str) -> str:
    return hashlib.sha256(_norm(text).encode()).hexdigest()


def findings(items: list[Item], max_tokens: int) -> list[Finding]:
    """Duplicates and oversized items, per coder (what one session loads)."""
    out: list[Finding] = []
    for coder in CODERS:
        mine = [i for i in items if i.coder == coder]
        out += _same_file(coder, [i for i in mine if i.kind == "instructions"])
        out += _repeated_sections(coder, [i for i in mine if i.kind == "instructions"])
        out += _same_name(coder, [i for i in mine if i.kind in ("skill", "agent")])
        out += _same_server(coder, [i for i in mine if i.kind == "mcp"])
        out += _oversized(coder, [i for i in mine if i.kind == "instructions"], max_tokens)
    return out


def _same_file(coder: str, docs: list[Item]) -> list[Finding]:
    out = []
    by_real: dict[str, list[Item]] = {}
    for item in docs:
        by_real.setdefault(os.path.realpath(item.path), []).append(item)
    shown: set[str] = set()
    for real, group in by_real.items():
        if len(group) > 1:
            paths = [i.path for i in group]
            shown.update(paths[1:])
            out.append(
                Finding(
                    coder,
                    "linked twice",
                    paths,
                    group[0].tokens * (len(group) - 1),
                    f"{' and '.join(paths)} are one file ({real}) read {len(group)} times:"
                    " remove the link(s), keep one place",
                    what=Path(real).name,
                )
            )
    by_text: dict[str, list[Item]] = {}
    for item in docs:
        if item.path not in shown and _norm(item.text):
            by_text.setdefault(_digest(item.text), []).append(item)
    for group in by_text.values():
        reals = {os.path.realpath(i.path) for i in group}
        if len(reals) > 1:
            paths = [i.path for i in group]
            out.append(
                Finding(
                    coder,
                    "duplicate file",
                    paths,
                    group[0].tokens * (len(group) - 1),
                    f"the same text is in {', '.join(paths)}: keep "
                    f"{_keeper(paths)} and delete the other copies",
                    what=Path(paths[0]).name,
                )
            )
    return out


def _keeper(paths: list[str]) -> str:
    """The copy to keep: the project's (shared with everyone who works on it) rather than a
    personal one in the home, and of the project's the one nearest the working directory."""
    home = str(Path.home()) + "/"
    return max(paths, key=lambda p: (not p.startswith(home), p.count("/")))


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if len(_norm(p)) >= PARAGRAPH_MIN]


def _repeated_sections(coder: str, docs: list[Item]) -> list[Finding]:
    """Paragraphs copied between two different files (the files not wholly the same)."""
    seen: dict[str, list[Item]] = {}
    for item in docs:
        for para in _paragraphs(item.text):
            key = _digest(para)
            group = seen.setdefault(key, [])
            if all(os.path.realpath(g.path) != os.path.realpath(item.path) for g in group):
                group.append(item)
    merged: dict[tuple[str, ...], tuple[int, str]] = {}
    texts = {_digest(p): p for item in docs for p in _paragraphs(item.text)}
    for key, group in seen.items():
        if len(group) < 2 or len({_digest(g.text) for g in group}) == 1:
            continue  # not repeated, or the files are copies (reported as such)
        paths = tuple(g.path for g in group)
        wasted = tokens(texts[key]) * (len(group) - 1)
        total, first = merged.get(paths, (0, ""))
        merged[paths] = (total + wasted, first or _norm(texts[key])[:60])
    return [
        Finding(
            coder,
            "repeated section",
            list(paths),
            wasted,
            f"the section starting “{first}…” is in {' and '.join(paths)}: keep it in"
            f" {_keeper(list(paths))} only",
            what=first,
        )
        for paths, (wasted, first) in merged.items()
    ]


def _same_name(coder: str, skills: list[Item]) -> list[Finding]:
    out = []
    groups: dict[tuple[str, str], list[Item]] = {}
    for item in skills:
        groups.setdefault((item.kind, item.name), []).append(item)
    for (kind, name), group in sorted(groups.items()):
        if len(group) > 1:
            paths = [i.path for i in group]
            out.append(
                Finding(
                    coder,
                    f"duplicate {kind}",
                    paths,
                    sum(i.tokens for i in group[1:]),
                    f"{kind} {name!r} is installed {len(group)} times ({', '.join(paths)}):"
                    " remove all but one",
                    what=name,
                )
            )
    return out


def _same_server(coder: str, servers: list[Item]) -> list[Finding]:
    out = []
    groups: dict[str, list[Item]] = {}
    for item in servers:
        if item.identity:
            groups.setdefault(item.identity, []).append(item)
    for identity, group in sorted(groups.items()):
        if len(group) > 1:
            where = [f"{i.name} in {i.path}" for i in group]
            out.append(
                Finding(
                    coder,
                    "duplicate MCP server",
                    [i.path for i in group],
                    0,
                    f"MCP server `{identity}` is configured {len(group)} times"
                    f" ({'; '.join(where)}): its tools load once per copy; keep one",
                    what=identity,
                )
            )
    return out


def _oversized(coder: str, docs: list[Item], max_tokens: int) -> list[Finding]:
    out = []
    for item in docs:
        if item.tokens > max_tokens:
            out.append(
                Finding(
                    coder,
                    "oversized",
                    [item.path],
                    item.tokens,
                    f"{item.path} costs {item.tokens:,} tokens in every session: keep the rules"
                    " every task needs there and move the rest into a skill or a file the"
                    " agent reads when it needs it",
                    what=Path(item.path).name,
                )
            )
    if coder == "codex":
        project = [i for i in docs if not _in_config(i.path)]
        size = sum(len(i.text.encode()) for i in project)
        if size > CODEX_DOC_LIMIT:
            out.append(
                Finding(
                    coder,
                    "truncated",
                    [i.path for i in project],
                    tokens("x" * (size - CODEX_DOC_LIMIT)),
                    f"Codex reads at most {CODEX_DOC_LIMIT // 1024} KiB of AGENTS.md files"
                    f" (project_doc_max_bytes); these hold {size:,} bytes, so the last"
                    f" {size - CODEX_DOC_LIMIT:,} are never seen: shorten them",
                    what="AGENTS.md",
                )
            )
    return out


def _in_config(path: str) -> bool:
    return "/.codex/" in path or path.startswith(os.environ.get("CODEX_HOME", "\0"))


def scan(
    coders: list[str],
    cwd: Path,
    home: Path,
    configs: dict[str, list[Path]] | None = None,
    max_tokens: int = 5000,
) -> Scan:
    """Every item each coder loads in a session started in `cwd`, for the home and for each
    account's own configuration directory; and the findings."""
    result = Scan()
    for coder in coders:
        dirs: list[Path | None] = [None, *((configs or {}).get(coder) or [])]
        for config in dirs:
            found = FINDERS[coder](cwd, home, config)
            result.items += found
            result.findings += findings(found, max_tokens)
    result.findings = _unique(result.findings)
    return result


def _unique(found: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in found:
        key = (f.coder, f.kind, tuple(f.paths))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
