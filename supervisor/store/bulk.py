"""Big commits through `git fast-import`: one process writes every object into one pack.

A change of thousands of files (`fleet bd import` of a whole queue, a format migration) would
be thousands of loose objects, each a file and an fsync. fast-import writes them as one pack,
fsynced once (the repository's `core.fsync`), and builds the trees itself. It commits to a
temporary ref; the caller then moves `refs/heads/main` with the usual compare-and-swap, so a
bulk commit publishes exactly like any other (a `kill -9` leaves the old or the new state).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from supervisor.errors import GitError
from supervisor.store.git import SAFE_CONFIG, Git, clean_env

if TYPE_CHECKING:
    from supervisor.store.store import Store

TMP_REFS = "refs/fleet/tmp/"
CHUNK = 1 << 20


def publish_bulk(
    store: Store, parent: str | None, files: Mapping[str, bytes | None], message: str, ident: str
) -> str | None:
    """Write `files` on top of `parent` as one commit and move the ref; None if it moved."""
    commit = fast_import(store.git, parent, message, ident, files)
    return commit if store.git.cas_ref(commit, parent) else None


def fast_import(
    git: Git,
    parent: str | None,
    message: str,
    ident: str,
    files: Mapping[str, bytes | None] | None = None,
    existing: Iterable[tuple[str, str, str]] = (),
    replace_all: bool = False,
) -> str:
    """A new commit on `parent`, not published: `files` written (None: deleted), `existing`
    objects (mode, sha, path) placed by sha, every other file dropped when `replace_all`."""
    import subprocess

    ref = f"{TMP_REFS}{os.getpid()}-{os.urandom(4).hex()}"
    argv = ["git", *SAFE_CONFIG, f"--git-dir={git.git_dir}", "fast-import", "--quiet", "--done"]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for chunk in _stream(ref, parent, message, ident, files or {}, existing, replace_all):
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise GitError(argv, proc.returncode, err.decode(errors="replace"))
    commit = git.ref(ref)
    git.run("update-ref", "-d", ref)
    git.written(git.objects / "pack")  # git fsynced the pack (core.fsync); now its name
    if commit is None:
        raise GitError(argv, 0, f"fast-import did not write {ref}")
    return commit


def _stream(
    ref: str,
    parent: str | None,
    message: str,
    ident: str,
    files: Mapping[str, bytes | None],
    existing: Iterable[tuple[str, str, str]],
    replace_all: bool,
) -> Iterable[bytes]:
    text = message.rstrip("\n").encode() + b"\n"
    head = [f"commit {ref}\n", f"committer {ident} {int(time.time())} +0000\n"]
    out = bytearray("".join(head).encode() + b"data %d\n" % len(text) + text)
    if parent:
        out += f"from {parent}\n".encode()
    if replace_all:
        out += b"deleteall\n"
    for mode, sha, path in existing:
        out += f"M {mode} {sha} {_path(path)}\n".encode()
        if len(out) > CHUNK:
            yield bytes(out)
            out.clear()
    for path, data in files.items():
        if data is None:
            out += f"D {_path(path)}\n".encode()
        else:
            out += f"M 100644 inline {_path(path)}\ndata {len(data)}\n".encode() + data + b"\n"
        if len(out) > CHUNK:
            yield bytes(out)
            out.clear()
    out += b"done\n"
    yield bytes(out)


def _path(path: str) -> str:
    """A path as fast-import reads it (fleet's paths never need quoting; refuse any that do)."""
    if not path or path[0] == '"' or any(c in path for c in "\n\\") or path.startswith("/"):
        raise ValueError(f"cannot store a file at {path!r}")
    return path
