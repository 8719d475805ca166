"""The one lock: an exclusive flock, held until released or until its process ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from supervisor.store.flock import Flock, locked


def test_a_held_lock_is_refused_to_another_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first, second = Flock(path), Flock(path)
    assert first.acquire()
    assert not second.acquire(patience=0.05)
    with locked(path, 0.0) as got:
        assert not got
    first.release()
    assert second.acquire()
    second.release()
    with locked(path, 0.0) as got:
        assert got


def test_a_lock_goes_with_the_process_that_held_it(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, fcntl, os\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert not Flock(path).acquire()
    holder.kill()
    holder.wait()
    lock = Flock(path)
    assert lock.acquire(patience=5.0)
    lock.release()
