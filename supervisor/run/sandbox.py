"""The optional sandbox: an agent of a sandboxed role runs inside bubblewrap (`bwrap`).

The whole system is mounted read-only (`$HOME` and `/tmp` included), and only what the attempt
needs is writable: its worktree (and the repository's git dir, which its commits write to, but
not the git dir's `hooks/` and `config`, which would run code outside the sandbox later), the
attempt's live directory (the result file and `TMPDIR`), and the coder's own config dir (the
account's, else the coder's default under `$HOME`). A write anywhere else fails with EROFS.
`sandbox_network = "none"` gives the agent no network at all (for commands that need none: an
agent CLI must reach its model's API).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from supervisor.config import Config
from supervisor.model import Task
from supervisor.store.git import run_in

# The coders' own state when no account names a config dir: what each CLI writes under $HOME.
DEFAULT_DIRS: dict[str, tuple[str, ...]] = {
    "claude": ("~/.claude", "~/.claude.json", "~/.cache/claude", "~/.config/claude"),
    "codex": ("~/.codex",),
    "gemini": ("~/.gemini",),
    "agy": ("~/.gemini",),
    "opencode": (
        "~/.local/share/opencode",
        "~/.config/opencode",
        "~/.cache/opencode",
        "~/.local/state/opencode",
    ),
}


class SandboxError(Exception):
    pass


def wanted(config: Config, task: Task) -> bool:
    return "*" in config.sandbox_roles or (bool(task.role) and task.role in config.sandbox_roles)


def writable(workdir: Path, live: Path, coder: str, config_dir: Path | None) -> list[Path]:
    """The paths the agent may write: its worktree and git dir, its live dir, its config."""
    paths = [live]
    top = run_in(workdir, "rev-parse", "--show-toplevel")
    common = run_in(workdir, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if top.returncode == 0 and common.returncode == 0:
        paths += [Path(top.stdout.decode().strip()), Path(common.stdout.decode().strip())]
    else:
        paths.append(workdir)
    if config_dir is not None:
        config_dir.mkdir(parents=True, exist_ok=True)
        paths.append(config_dir)
    else:
        for name in DEFAULT_DIRS.get(coder, ()):
            path = Path(os.path.expanduser(name))
            if path.exists():
                paths.append(path)
    return paths


def argv(command: list[str], workdir: Path, rw: Iterable[Path], network: str) -> list[str]:
    """`command` wrapped in bwrap."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            "the sandbox needs bubblewrap, which is not installed (apt install bubblewrap),"
            " or take the role out of sandbox_roles"
        )
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if network == "none":
        args.append("--unshare-net")
    for path in sorted({p.resolve() for p in rw}, key=lambda p: len(p.parts)):
        args += ["--bind", str(path), str(path)]
        for guarded in ("hooks", "config"):  # of a git dir: what would run code outside later
            if path.name.endswith(".git") and (path / guarded).exists():
                args += ["--ro-bind", str(path / guarded), str(path / guarded)]
    args += ["--chdir", str(workdir), "--", *command]
    return args
