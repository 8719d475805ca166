"""The check command a merge must pass, run in the merged tree in a session of its own.

While it runs, its pid and start time are recorded, so that a check left running by a killed
supervisor is stopped (it is still the process fleet started: same pid, same start time) before
the next merge in that repository uses the scratch tree.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from supervisor.store.git import clean_env

OUTPUT_CAP = 16 * 1024  # bytes of a check's output kept in the handoff (its end)


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
            record_check(record, proc.pid)
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


def record_check(record: Path, pid: int) -> None:
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
