"""An unexpected error is a bug: one plain line, exit 3, and the details in the crash log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.queue import mutations as queue


def test_internal_error_is_reported_in_one_line_with_a_crash_log(
    fleet: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fleet("init").code == 0

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk said no")

    monkeypatch.setattr(queue, "create", broken)
    result = fleet("bd", "create", "anything")
    assert result.code == 3
    assert result.err.splitlines()[0] == "fleet: internal error: RuntimeError: the disk said no"
    assert "Traceback" not in result.err
    log = (home / "logs" / "crash.log").read_text()
    assert "RuntimeError: the disk said no" in log and "Traceback" in log
    assert "fleet 0.1.0, Python 3." in log
