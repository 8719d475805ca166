"""The audit journal: every commit fleet publishes, recorded outside the tree in a hash chain, so
that `fleet log --verify` can tell the history fleet wrote from a rewritten or edited one.

`$FLEET_HOME/audit/journal` has one line per published commit, appended right after its
compare-and-swap landed:

    <commit> <parent or -> <tree> <unix time> <mac>

where `mac` is BLAKE2b-256 keyed by `$FLEET_HOME/audit/key` (32 random bytes, mode 0600), of the
previous line's mac and this line's fields. Git's own hash chain proves a commit's content and
ancestry; the journal proves which commits fleet made and in which order. Editing a line breaks
the chain; amending a commit or rewriting the branch leaves recorded commits out of the branch's
history, or commits in it that fleet never recorded; editing an object in place fails `git fsck`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import asdict, dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.store.store import Store

DIR = "audit"
JOURNAL = "journal"
KEY = "key"
GENESIS = "0" * 64
TAIL = 512  # bytes read from the journal's end to find its last line


def _dir(home: Path) -> Path:
    path = home / DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def key(home: Path) -> bytes:
    """The journal's key, created (mode 0600) on first use."""
    path = _dir(home) / KEY
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    tmp = path.with_name(f"{KEY}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first process to create it wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def mac(secret: bytes, previous: str, fields: str) -> str:
    """Keyed BLAKE2b (a MAC by design; `hmac` costs 16 ms to import, `bd create`'s budget)."""
    return blake2b(f"{previous} {fields}".encode(), key=secret, digest_size=32).hexdigest()


def record(home: Path, commit: str, parent: str | None, tree: str, when: int) -> None:
    """Append a published commit to the journal (under a lock: the chain needs the last mac)."""
    secret = key(home)
    fd = os.open(_dir(home) / JOURNAL, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        previous = GENESIS
        if size:
            os.lseek(fd, max(0, size - TAIL), os.SEEK_SET)
            last = os.read(fd, TAIL).rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
            previous = last.rsplit(" ", 1)[-1]
        fields = f"{commit} {parent or '-'} {tree} {when}"
        os.write(fd, f"{fields} {mac(secret, previous, fields)}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Problem:
    kind: str  # journal-edited, not-in-history, not-recorded, wrong-parent, object-corrupt
    detail: str
    commit: str = ""


@dataclass
class Report:
    recorded: int = 0
    commits: int = 0
    before_journal: int = 0  # commits older than the journal (made by an earlier fleet)
    head: str = ""
    anchor: str = ""  # the journal's last mac: note it elsewhere to detect a rewritten journal
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def verify(store: Store, fsck: bool = True, signer: Path | None = None) -> Report:
    """Check the journal's chain, the branch's history against it, the commits' signatures
    (with `signer`, the configured signing key), then git's objects."""
    report = Report(head=store.head() or "")
    lines = _lines(store.home)
    secret = key(store.home) if lines else b""
    previous = GENESIS
    recorded: dict[str, tuple[int, str, str]] = {}  # commit -> (line number, parent, tree)
    for number, line in enumerate(lines, 1):
        parts = line.split(" ")
        if len(parts) != 5 or mac(secret, previous, " ".join(parts[:4])) != parts[4]:
            report.problems.append(
                Problem("journal-edited", f"line {number} of the audit journal was changed")
            )
            previous = parts[-1]
            if len(parts) != 5:
                continue
        else:
            previous = parts[4]
        recorded[parts[0]] = (number, parts[1], parts[2])  # reported once, as edited
    report.anchor = previous if lines else ""
    report.recorded = len(recorded)
    history = _history(store)  # oldest first: (commit, parent, tree, summary)
    report.commits = len(history)
    in_history = {c for c, _, _, _ in history}
    # Commits older than the first one the journal holds were made before it began.
    begins = next((i for i, (c, _, _, _) in enumerate(history) if c in recorded), len(history))
    if not recorded:
        begins = len(history)
    report.before_journal = begins
    for commit, parent, tree, summary in history[begins:]:
        entry = recorded.get(commit)
        if entry is None:
            report.problems.append(
                Problem(
                    "not-recorded",
                    f"commit {commit[:12]} ({summary}) was not written by fleet",
                    commit,
                )
            )
        elif entry[1:] != (parent or "-", tree):
            report.problems.append(
                Problem("wrong-parent", f"commit {commit[:12]} differs from its record", commit)
            )
    for commit, (number, _, _) in sorted(recorded.items(), key=lambda kv: kv[1][0]):
        if commit not in in_history:
            report.problems.append(
                Problem(
                    "not-in-history",
                    f"commit {commit[:12]} (journal line {number}) is no longer in the history"
                    " of refs/heads/main: the branch was rewritten (amended, reset or rebased)",
                    commit,
                )
            )
    if signer is not None:
        report.problems += _signatures(store, [c for c, _, _, _ in history], signer)
    if fsck and history:
        report.problems += _fsck(store)
    return report


def _signatures(store: Store, commits: list[str], key: Path) -> list[Problem]:
    """From the first commit with a good signature by `key` on, every commit must have one."""
    from supervisor.store import signing

    bad = dict(signing.unsigned(store.git_dir, commits, key))
    first = next((i for i, c in enumerate(commits) if c not in bad), None)
    if first is None:
        return []
    what = {"N": "is not signed", "B": "has a bad signature"}
    return [
        Problem("unsigned", f"commit {c[:12]} {what.get(bad[c], 'is signed by another key')}", c)
        for c in commits[first:]
        if c in bad
    ]


def _lines(home: Path) -> list[str]:
    try:
        text = (home / DIR / JOURNAL).read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.split("\n") if line]


def _history(store: Store) -> list[tuple[str, str, str, str]]:
    if store.head() is None:
        return []
    out = store.git.out(
        "log", "--first-parent", "--reverse", "--format=%H %P|%T|%s", "refs/heads/main"
    )
    found = []
    for line in out.splitlines():
        ids, tree, summary = line.split("|", 2)
        commit, _, parents = ids.partition(" ")
        found.append((commit, parents.split(" ")[0] if parents else "", tree, summary))
    return found


def _fsck(store: Store) -> list[Problem]:
    proc = store.git.run("fsck", "--no-dangling", "--no-progress", check=False)
    if proc.returncode == 0:
        return []
    output = (proc.stderr + proc.stdout).decode(errors="replace")
    lines = [x for x in output.splitlines() if x.strip()][:5]
    return [Problem("object-corrupt", "git fsck: " + "; ".join(lines))]
