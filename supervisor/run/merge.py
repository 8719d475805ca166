"""The merge queue: a closed task's branch brought onto its base branch, one at a time per
repository, in the order the tasks closed.

For each task: merge `fleet/<id>` into the base branch's current commit in a scratch worktree of
fleet's own (`git merge --no-ff`: the agent's commits stay exactly as they were made, and the
merge commit is the one commit to revert to undo the task); run the check command there; then
advance the base branch, only if the check passed:

- not checked out anywhere: a compare-and-swap of the ref (`git update-ref NEW OLD`);
- checked out in a work tree (the user's): only while that tree has no uncommitted change to a
  tracked file, by `git merge --ff-only` in that tree, exactly what a fast-forward does; else
  the merge waits, and says so.

A conflict or a red check reopens the task with the conflict or the check's output as its
handoff; after `max_attempts` such failures it is blocked with the reason. Crash safety: the
base branch moves in one atomic step (a ref update, or the fast-forward, which git ends with the
ref update), and a task whose branch is already in its base is recorded as merged, so a queue
killed at any instant resumes on restart and never merges twice. A journal covers the one
window git leaves open: a fast-forward killed after it wrote the tree but before it moved the
ref is finished on restart.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config import Config
from supervisor.model import Task, iso
from supervisor.run import delivery, worktree
from supervisor.run.ops import Op
from supervisor.run.stack import base_of, user_identity
from supervisor.run.status import move
from supervisor.store.git import clean_env, run_in
from supervisor.store.repo import git_dir
from supervisor.store.store import Store

OUTPUT_CAP = 16 * 1024  # bytes of a check's output kept in the handoff (its end)
LOOK_EVERY = 2.0  # seconds between two looks at a queue that waits (a dirty tree)
RESCAN_EVERY = 600.0  # seconds between two reads of the whole queue from the store
RETRIES = 5  # merges of one task in a row that may fail unexpectedly before it is blocked
# task id -> (base commit, branch head, check, merge commit) of a merge whose check passed but
# that could not advance the base yet (the user's tree): it is not merged and checked again
VERIFIED: dict[str, tuple[str, str, str, str]] = {}


@dataclass
class Merged:
    """What one turn of the queue did for one task."""

    task_id: str
    kind: str  # merged, conflict, red, waiting, moved or retry (try again), error (block)
    text: str = ""
    commit: str = ""
    base: str = ""
    pruned: bool = False


def mode(task: Task, config: Config) -> str:
    return task.deliver or config.deliver


def on_close(task: Task, config: Config, now: float) -> None:
    """A task just closed by its attempt: queue its work for delivery (called inside the
    attempt's record, so the queue entry lands in the same commit as the close)."""
    if task.status != "closed":
        return
    work = next((a.get("work") for a in reversed(task.attempts) if a.get("work")), None)
    if work and work.get("error"):  # git refused the commit: the work is in the worktree
        task.delivery = {"state": "uncommitted", "error": str(work["error"])}
        return
    if not work or not work.get("head"):
        return
    state = task.delivery or {}
    same_round = int(state.get("retry_base") or 0) == task.retry_base  # `fleet retry` resets
    kept = {"failures": state["failures"]} if same_round and state.get("failures") else {}
    if task.retry_base:
        kept["retry_base"] = task.retry_base
    how = mode(task, config)
    branch = str(work.get("branch") or f"fleet/{task.id}")
    if how == "merge":
        task.delivery = {**kept, "state": "queued", "queued_at": iso(now), "branch": branch}
    elif how == "branch":
        task.delivery = {**kept, "state": "branch", "branch": branch}
    else:
        task.delivery = {**kept, "state": "kept", "branch": branch}


def settle(task: Task, done: Merged, now: float, max_attempts: int) -> bool:
    """Apply a merge's outcome to the task: the one place delivery changes a task's status
    (reopen on a conflict or a red check, block after `max_attempts` of them or on an error).
    False when there is nothing to change."""
    state = dict(task.delivery or {})
    if done.kind == "merged":
        task.delivery = {
            **state,
            "state": "merged",
            "commit": done.commit,
            "base": done.base,
            "merged_at": iso(now),
            "pruned": done.pruned,
        }
        task.delivery.pop("waiting", None)
        task.delivery.pop("handoff", None)
        return True
    if done.kind == "waiting":
        if state.get("waiting") == done.text:
            return False
        task.delivery = {**state, "waiting": done.text}
        return True
    if done.kind not in ("conflict", "red", "error") or task.status != "closed":
        return False
    if int(state.get("retry_base") or 0) != task.retry_base:
        state["failures"] = 0
    failures = int(state.get("failures") or 0) + 1
    first = done.text.strip().splitlines()[0] if done.text.strip() else done.kind
    state.pop("waiting", None)
    task.delivery = {**state, "failures": failures, "handoff": done.text}
    if done.kind == "error" or failures >= max_attempts:
        task.delivery["state"] = "blocked"
        why = (
            f"delivery failed: {first}"
            if done.kind == "error"
            else f"its merge failed {failures} times; the last: {first}"
        )
        move(task, "blocked", why, now)
        return True
    task.delivery["state"] = "reopened"
    move(task, "open", f"reopened by the merge queue: {first}", now)
    return True


def settle_op(done: Merged, now: float, config: Config) -> Op:
    def change(task: Task) -> bool:
        limit = task.max_attempts or config.max_attempts
        return settle(task, done, now, limit)

    events = {"red": "check_failed", "conflict": "merge_conflict", "error": "merge_failed"}
    event = events.get(done.kind, "merge_waiting" if done.kind == "waiting" else done.kind)
    return Op(done.task_id, event, change)


# -- one merge ------------------------------------------------------------------------------------


class Repo:
    """A user's repository as the queue sees it: its git directory and fleet's place for it."""

    def __init__(self, common: Path, home: Path) -> None:
        self.common = common  # the repository's (common) git directory
        self.top = common.parent if common.name == ".git" else common
        self.folder = worktree.repo_folder(self.top, home / "worktrees")
        self.merges = home / "merges" / self.folder.name
        self.scratch = self.merges / "scratch"
        self.journal = self.merges / "journal.json"

    def git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_in(self.common, *args)

    def rev(self, ref: str) -> str:
        proc = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return proc.stdout.decode().strip() if proc.returncode == 0 else ""


def repo_of(task: Task, home: Path) -> Repo | None:
    found = git_dir(Path(task.cwd)) if task.cwd else None
    if found is None:
        return None
    common_file = found / "commondir"
    if common_file.exists():  # a linked worktree: its repository's git directory
        found = (found / common_file.read_text().strip()).resolve()
    return Repo(found, home)


@contextmanager
def turn(repo: Repo) -> Iterator[None]:
    """One merge at a time per repository, across processes (the supervisor, `task merge`)."""
    repo.merges.mkdir(parents=True, exist_ok=True)
    fd = os.open(repo.merges / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def merge_one(task: Task, home: Path, config: Config, actor: str) -> Merged:
    """Bring the task's branch onto its base branch (see the module's docstring)."""
    repo = repo_of(task, home)
    base = base_of(task)
    if repo is None or not base:
        why = "its directory is not in a git repository" if repo is None else "no base branch"
        return Merged(task.id, "error", f"cannot merge: {why} (recorded at create)")
    with turn(repo):
        finish_journal(repo)
        stop_stale_check(repo.merges / "check.json")
        return _merge(task, repo, base, home, config, actor)


def _merge(task: Task, repo: Repo, base: str, home: Path, config: Config, actor: str) -> Merged:
    branch = f"fleet/{task.id}"
    head = repo.rev(f"refs/heads/{branch}")
    old = repo.rev(f"refs/heads/{base}")
    if not old:
        return Merged(task.id, "error", f"the base branch {base} does not exist any more")
    if not head:
        return Merged(task.id, "error", f"its branch {branch} does not exist any more")
    if repo.git("merge-base", "--is-ancestor", head, old).returncode == 0:
        return _done(task, repo, base, old, config)  # already there (by us before a crash)
    busy = _dirty(repo, base)
    if busy:
        return Merged(task.id, "waiting", busy)  # before the merge and its check: they wait too
    command = task.check or config.check
    passed = VERIFIED.get(task.id)
    if passed and passed[:3] == (old, head, command) and repo.rev(passed[3]):
        return _advance(task, repo, base, old, passed[3], config)  # merged and checked already
    scratch = _scratch(repo, old)
    env = user_identity(scratch)
    title = f"Merge {branch}: {task.title}"
    trailers = f"Fleet-Task: {task.id}\nFleet-Event: merged"
    try:
        delivery.git(scratch, "merge", "--no-ff", "-m", title, "-m", trailers, head, env=env)
    except delivery.DeliveryError as exc:
        files = run_in(scratch, "diff", "--name-only", "--diff-filter=U").stdout.decode().split()
        run_in(scratch, "merge", "--abort")
        if not files:
            return Merged(task.id, "error", str(exc))
        return Merged(
            task.id,
            "conflict",
            f"merging {branch} into {base} (at {old[:10]}) conflicted in: {', '.join(files)}\n\n"
            f"{exc}\n\nAt your next attempt your branch is brought up to date with {base}: the "
            "conflict markers will be in your working directory. Resolve them, keeping what "
            f"{base} changed and what this task needs.",
        )
    new = delivery.git(scratch, "rev-parse", "HEAD").strip()
    if command:
        ok, output = run_check(command, scratch, task.id, config.check_seconds, repo.merges)
        if not ok:
            return Merged(
                task.id,
                "red",
                f"the check `{command}` failed on {branch} merged into {base}:\n\n{output}",
            )
    VERIFIED[task.id] = (old, head, command, new)  # a merge that then waits is not redone
    return _advance(task, repo, base, old, new, config)


def _scratch(repo: Repo, at: str) -> Path:
    """fleet's own work tree for merging in this repository, detached at `at`, clean. It is
    rebuilt when anything is wrong with it (a merge killed half-way)."""
    scratch = repo.scratch
    if (scratch / ".git").exists():
        steps = (
            ("merge", "--abort"),
            ("checkout", "--quiet", "--force", "--detach", at),
            ("clean", "-ffdxq"),
        )
        codes = [run_in(scratch, *step).returncode for step in steps]
        if codes[1] == 0 and codes[2] == 0:
            return scratch
        repo.git("worktree", "remove", "--force", str(scratch))
    if scratch.exists():
        import shutil

        shutil.rmtree(scratch)
    repo.git("worktree", "prune")
    proc = repo.git("worktree", "add", "--quiet", "--detach", str(scratch), at)
    if proc.returncode != 0:
        raise delivery.DeliveryError(proc.stderr.decode(errors="replace").strip())
    return scratch


def run_check(
    command: str, where: Path, task_id: str, limit: float, state: Path | None = None
) -> tuple[bool, str]:
    """Run the check in its own session; (passed, the end of its output). Its process is
    recorded in `state/check.json` while it runs, so that a check a killed supervisor left
    running is stopped before the next one uses the scratch tree."""
    env = clean_env({"FLEET_TASK_ID": task_id, "FLEET_CHECK": "1"})
    record = state / "check.json" if state else None
    if record is not None:
        stop_stale_check(record)
    with subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=where,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    ) as proc:
        if record is not None:
            _record_check(record, proc.pid)
        try:
            out, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate()
            return False, _tail(out) + f"\n[stopped after {limit:g} s]"
        finally:
            if record is not None:
                record.unlink(missing_ok=True)
    return proc.returncode == 0, _tail(out) + (
        "" if proc.returncode == 0 else f"\n[exit code {proc.returncode}]"
    )


def _record_check(record: Path, pid: int) -> None:
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return
    record.write_text(json.dumps({"pid": pid, "create_time": started}))


def stop_stale_check(record: Path) -> bool:
    """Stop the check a killed supervisor left running: the process recorded in `record`, if
    it is still the one fleet started (same pid and start time), with its whole session."""
    import psutil

    try:
        data = json.loads(record.read_text())
        pid, started = int(data["pid"]), float(data["create_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    record.unlink(missing_ok=True)
    try:
        if abs(psutil.Process(pid).create_time() - started) > 0.01:
            return False
        os.killpg(pid, 9)  # the check runs in a session of its own: its group is its pid
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False
    return True


def _tail(data: bytes) -> str:
    if len(data) > OUTPUT_CAP:
        data = b"[...]\n" + data[-OUTPUT_CAP:]
    return data.decode(errors="replace").rstrip()


def checked_out(repo: Repo, branch: str) -> Path | None:
    """The work tree where `branch` is checked out, if any."""
    listing = repo.git("worktree", "list", "--porcelain").stdout.decode()
    place = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            place = Path(line[len("worktree ") :])
        elif line == f"branch refs/heads/{branch}" and place is not None:
            return place
    return None


def _advance(task: Task, repo: Repo, base: str, old: str, new: str, config: Config) -> Merged:
    tree = checked_out(repo, base)
    if tree is None:
        if repo.git("update-ref", f"refs/heads/{base}", new, old).returncode != 0:
            return Merged(task.id, "moved", f"{base} moved during the merge")
        return _done(task, repo, base, new, config)
    busy = _dirty(repo, base, tree)
    if busy:
        return Merged(task.id, "waiting", busy)
    _write_journal(repo, {"task": task.id, "base": base, "old": old, "new": new, "tree": str(tree)})
    proc = run_in(tree, "merge", "--ff-only", "--quiet", new)
    repo.journal.unlink(missing_ok=True)
    if proc.returncode != 0:
        if repo.rev(f"refs/heads/{base}") != old:
            return Merged(task.id, "moved", f"{base} moved during the merge")
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        return Merged(
            task.id,
            "waiting",
            f"waits for {tree}: git would not fast-forward {base} there "
            f"({said[0] if said else 'no reason given'})",
        )
    return _done(task, repo, base, new, config)


def _dirty(repo: Repo, base: str, tree: Path | None = None) -> str:
    """Why the base branch cannot advance now: it is checked out in a tree with uncommitted
    changes to tracked files ("" when it can)."""
    tree = tree or checked_out(repo, base)
    if tree is None:
        return ""
    status = run_in(tree, "status", "--porcelain", "--untracked-files=no")
    if status.returncode == 0 and not status.stdout.strip():
        return ""
    return (
        f"waits for {tree} to be clean: {base} is checked out there with uncommitted changes "
        "(commit or stash them; fleet never touches them)"
    )


def _done(task: Task, repo: Repo, base: str, commit: str, config: Config) -> Merged:
    VERIFIED.pop(task.id, None)
    pruned = prune_task(repo, task.id, base) if config.prune_merged else False
    return Merged(task.id, "merged", commit=commit, base=base, pruned=pruned)


def prune_task(repo: Repo, task_id: str, base: str, place: Path | None = None) -> bool:
    """Remove a task's worktree and branch once its branch is in `base` and its tree is clean.
    Anything not merged, or uncommitted, stays."""
    place = place or checked_out(repo, f"fleet/{task_id}")
    branch = f"refs/heads/fleet/{task_id}"
    if repo.git("merge-base", "--is-ancestor", branch, f"refs/heads/{base}").returncode != 0:
        return False
    if place is not None and (place / ".git").exists():
        status = run_in(place, "status", "--porcelain")
        if status.returncode != 0 or status.stdout.strip():
            return False
        if repo.git("worktree", "remove", str(place)).returncode != 0:
            return False
    return repo.git("branch", "-D", f"fleet/{task_id}").returncode == 0


def _write_journal(repo: Repo, data: dict[str, Any]) -> None:
    tmp = repo.journal.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(repo.journal)


def finish_journal(repo: Repo) -> None:
    """A fast-forward of a user's tree killed between writing the tree and moving the ref:
    finish it (the tree already holds `new`), so the base branch is after the merge."""
    try:
        data = json.loads(repo.journal.read_text())
    except (OSError, ValueError):
        return
    base, old, new = str(data.get("base")), str(data.get("old")), str(data.get("new"))
    tree = Path(str(data.get("tree")))
    if repo.rev(f"refs/heads/{base}") == old and tree.is_dir():
        index_tree = run_in(tree, "write-tree").stdout.decode().strip()
        new_tree = repo.rev(new) and repo.git("rev-parse", f"{new}^{{tree}}").stdout.decode()
        if index_tree and index_tree == str(new_tree).strip():
            repo.git("update-ref", f"refs/heads/{base}", new, old)
    repo.journal.unlink(missing_ok=True)


# -- the queue the supervisor runs ----------------------------------------------------------------


class Queue:
    """The supervisor's merge queue: at most one merge under way per repository, in a thread
    of its own (a check may take minutes; the loop goes on), oldest close first."""

    def __init__(self, store: Store, actor: str, background: bool = True) -> None:
        self.store = store
        self.actor = actor
        self.background = background
        self.busy: dict[Path, str] = {}  # repository -> the task whose merge is under way
        self.threads: list[threading.Thread] = []
        self.done: list[Merged] = []
        self.lock = threading.Lock()
        self.seen = ""  # the commit last looked at
        self.look_at = 0.0
        self.line: dict[str, str] = {}  # task id -> where it stands, for `fleet tasks`
        self.known: set[str] = set()  # tasks that may be queued: the queue, read incrementally
        self.rescan_at = 0.0  # when to read the whole queue from the store again
        self.retries: dict[str, int] = {}  # task id -> merges in a row that raised
        self.hold: dict[str, float] = {}  # task id -> not merged again before then (a backoff)

    def step(self, commit: str | None, config: Config, now: float) -> list[Op]:
        """Ops for the merges that ended since the last step; start the next ones."""
        ops = self._drain(now, config)
        if ops:  # their tasks are still queued until these ops are committed: look next time
            self.look_at = 0.0
            return ops
        if (commit or "") != self.seen or now >= self.look_at:
            self.seen, self.look_at = commit or "", now + LOOK_EVERY
            self._look(config, now)
            ops += self._drain(now, config)  # merges run in the loop's thread (tests)
        return ops

    def pending(self, ended: list[str] | None = None) -> int:
        """Tasks queued or merging. `ended`: tasks whose attempts just ended (each may have just
        been queued; the next look tells)."""
        if ended:
            self.known.update(ended)
            self.look_at = 0.0
        return len(self.known | set(self.busy.values()))

    def _drain(self, now: float, config: Config) -> list[Op]:
        with self.lock:
            done, self.done = self.done, []
        ended = {d.task_id for d in done}
        self.busy = {k: t for k, t in self.busy.items() if t not in ended}
        if any(d.kind == "moved" for d in done):
            self.look_at = 0.0  # the base moved under a merge: try again at once
        for d in done:
            if d.kind != "retry":
                self.retries.pop(d.task_id, None)
                self.hold.pop(d.task_id, None)
                continue
            self.retries[d.task_id] = self.retries.get(d.task_id, 0) + 1
            self.hold[d.task_id] = now + LOOK_EVERY * 2 ** self.retries[d.task_id]
            if self.retries[d.task_id] >= RETRIES:  # not a passing hiccup: say so, block it
                d.kind, d.text = "error", f"the merge failed {RETRIES} times: {d.text}"
                self.retries.pop(d.task_id)
        line = dict(self.line)
        for d in done:
            if d.kind == "waiting":
                line[d.task_id] = d.text
            else:
                line.pop(d.task_id, None)
        self._show(line)
        return [settle_op(d, now, config) for d in done if d.kind not in ("moved", "retry")]

    def _look(self, config: Config, now: float) -> None:
        """Start the oldest queued merge of each repository that has none under way. The queue
        is read whole from the store at the start and every RESCAN_EVERY seconds (one query over
        the closed tasks); in between, only the tasks whose attempts ended are looked at."""
        if now >= self.rescan_at:
            self.rescan_at = now + RESCAN_EVERY
            self.known = {str(b["id"]) for b in self.store.cache.delivering()}
        queued = []
        for task_id in sorted(self.known):
            task = self.store.cache.get(task_id)
            if (
                task is None
                or task.status != "closed"
                or (task.delivery or {}).get("state") != "queued"
            ):
                self.known.discard(task_id)
                continue
            queued.append(task)
        queued.sort(key=lambda t: (str((t.delivery or {}).get("queued_at")), t.id))
        line: dict[str, str] = {}
        for task in queued:
            repo = repo_of(task, self.store.home)
            key = repo.common if repo else Path(task.cwd)
            if now < self.hold.get(task.id, 0.0):
                line[task.id] = "merge failed; tried again shortly"
                continue
            if key in self.busy:
                merging = self.busy[key] == task.id
                waiting = str((task.delivery or {}).get("waiting") or "queued to merge")
                line[task.id] = "merging" if merging else waiting
                continue
            self.busy[key] = task.id
            line[task.id] = str((task.delivery or {}).get("waiting") or "merging")
            self._start(task, config)
        self._show(line)

    def _show(self, line: dict[str, str]) -> None:
        if line != self.line:
            self.line = line
            _write_line(self.store.home / "live" / "merges.json", line)

    def _start(self, task: Task, config: Config) -> None:
        def work() -> None:
            try:
                result = merge_one(task, self.store.home, config, self.actor)
            except Exception as exc:  # git or the host failed: try again a little later
                result = Merged(task.id, "retry", f"{type(exc).__name__}: {exc}")
            with self.lock:
                self.done.append(result)

        if not self.background:
            work()
            return
        self.threads = [t for t in self.threads if t.is_alive()]
        thread = threading.Thread(target=work, daemon=True, name=f"merge {task.id}")
        self.threads.append(thread)
        thread.start()

    def wait(self, timeout: float) -> None:
        for thread in list(self.threads):
            thread.join(timeout)


def _write_line(path: Path, line: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(line))
    tmp.replace(path)


def waiting(home: Path) -> dict[str, str]:
    """Where each queued task stands, as the running supervisor last wrote it."""
    try:
        data = json.loads((home / "live" / "merges.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
