"""In-process trees equal what git itself builds, and keep working after git packs them."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from supervisor.store.git import Git

NAMES = [
    "tasks/a.json",
    "tasks/b.json",
    "tasks/a",
    "runs/x/1/log.txt",
    "runs/x/1/out",
    "runs/x-y/1/a",
    "config.toml",
    "accounts/w.json",
    "tasks-x",
    "a.b",
    "a-b",
]


def git_tree(git_dir: Path, files: dict[str, str], index: Path) -> str:
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    index.unlink(missing_ok=True)
    lines = "".join(f"100644 {sha}\t{path}\n" for path, sha in files.items())
    base = ["git", f"--git-dir={git_dir}"]
    subprocess.run(
        [*base, "update-index", "--add", "--index-info"], input=lines.encode(), env=env, check=True
    )
    out = subprocess.run([*base, "write-tree"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_trees_match_git_write_tree_over_random_changes(tmp_path: Path) -> None:
    git_dir = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    git = Git(git_dir)
    rng = random.Random(7)
    files: dict[str, str] = {}
    parent = None
    for step in range(150):
        changes: dict[str, str | None] = {}
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(NAMES)
            deleting = rng.random() < 0.25
            changes[name] = None if deleting else git.write_object("blob", os.urandom(8))
        tree = git.write_tree(parent, changes)
        files = {k: v for k, v in {**files, **changes}.items() if v}
        assert tree == git_tree(git_dir, files, tmp_path / "index"), f"step {step}"
        parent = git.commit(tree, parent, f"step {step}", "t <t@t>", 0)
    subprocess.run(
        ["git", f"--git-dir={git_dir}", "update-ref", "refs/heads/main", parent], check=True
    )
    fsck = subprocess.run(
        ["git", f"--git-dir={git_dir}", "fsck", "--strict"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr


def test_writing_on_top_of_packed_objects(tmp_path: Path) -> None:
    git_dir = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    git = Git(git_dir)
    blob = git.write_object("blob", b"one\n")
    first = git.commit(git.write_tree(None, {"tasks/a.json": blob}), None, "one", "t <t@t>", 0)
    subprocess.run(
        ["git", f"--git-dir={git_dir}", "update-ref", "refs/heads/main", first], check=True
    )
    subprocess.run(["git", f"--git-dir={git_dir}", "gc", "-q", "--prune=now"], check=True)
    assert not list((git_dir / "objects").glob("??/*"))  # everything is packed now
    fresh = Git(git_dir)  # no parsed trees cached
    two = fresh.write_object("blob", b"two\n")
    tree = fresh.write_tree(first, {"tasks/b.json": two})
    assert tree == git_tree(git_dir, {"tasks/a.json": blob, "tasks/b.json": two}, tmp_path / "i")


def test_deleting_everything_gives_the_empty_tree(tmp_path: Path) -> None:
    git_dir = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    git = Git(git_dir)
    blob = git.write_object("blob", b"x")
    first = git.commit(git.write_tree(None, {"a/b/c": blob}), None, "one", "t <t@t>", 0)
    assert git.write_tree(first, {"a/b/c": None}) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
