"""The agy coder against a stand-in `agy` (the real one cannot be installed here): the stand-in
checks the flags fleet passes, does the scripted work and prints plain text, as agy's print mode
does."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from coders.agy import AgyCoder, AgyParser
from coders.base import EventKind, Outcome, Verdict
from coders.check.trial import Scratch
from tests.support.agent_cli import run

FAKE_AGY = '''#!{python}
"""A stand-in for agy's print mode: checks its flags, then does what FAKE_AGY_MODE says."""
import json, os, re, sys
from pathlib import Path

args = sys.argv[1:]
called = {{"argv": args, "home": os.environ["HOME"]}}
Path(os.environ["FAKE_AGY_ARGV"]).write_text(json.dumps(called))
if "--dangerously-skip-permissions" not in args or args[-2] != "--print":
    print("agy: usage: agy [flags] --print <prompt>", file=sys.stderr)
    sys.exit(2)
prompt = args[-1]
mode = os.environ.get("FAKE_AGY_MODE", "ok")
if mode == "quota":
    print("Working on it.")
    print("Error: RESOURCE_EXHAUSTED: quota exceeded for this account (429)")
    sys.exit(1)
if mode == "auth":
    print("Error: please sign in again: credentials expired")
    sys.exit(1)
workdir = re.search(r"Working directory: (\\S+)", prompt).group(1)
result = re.search(r"Write your result as JSON to: (\\S+)", prompt).group(1)
print("<plan>")
print("1. Write hello.txt")
print("</plan>")
Path(workdir, "hello.txt").write_text("hello from agy\\n")
done = {{"status": "done", "summary": "wrote it", "open_questions": []}}
Path(result).write_text(json.dumps(done))
print("Done.")
'''


@pytest.fixture
def fake_agy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bin dir holding the stand-in agy; its argv lands in the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "agy"
    exe.write_text(FAKE_AGY.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    argv_file = tmp_path / "agy-argv.json"
    monkeypatch.setenv("FAKE_AGY_ARGV", str(argv_file))
    return argv_file


def test_a_run_writes_the_files_and_states_its_plan(tmp_path: Path, fake_agy: Path) -> None:
    work = Scratch.create(tmp_path / "run")
    spec = work.spec("fl-test", {}, system_prompt="You are the builder.")
    attempt = run(AgyCoder(), spec, work, str(tmp_path / "bin"), timeout=20)
    assert attempt.verdict == Verdict(Outcome.SUCCESS)
    assert (work.workdir / "hello.txt").read_text() == "hello from agy\n"
    assert json.loads(work.result_file.read_text())["status"] == "done"
    assert attempt.parser.plan == "1. Write hello.txt"
    assert [e.text for e in attempt.events if e.kind == EventKind.TEXT][-1] == "Done."
    called = json.loads(fake_agy.read_text())
    argv = called["argv"]
    assert argv[argv.index("--print-timeout") + 1] == "24h"
    assert argv[argv.index("--add-dir") + 1] == str(work.result_file.parent)
    assert argv[-1] == f"You are the builder.\n\n{spec.prompt}"
    assert called["home"] == str(work.config_dir)


@pytest.mark.parametrize(
    ("mode", "outcome"), [("quota", Outcome.RATE_LIMITED), ("auth", Outcome.AUTH_ERROR)]
)
def test_a_failed_run_is_classified_by_its_last_lines(
    tmp_path: Path, fake_agy: Path, monkeypatch: pytest.MonkeyPatch, mode: str, outcome: Outcome
) -> None:
    monkeypatch.setenv("FAKE_AGY_MODE", mode)
    work = Scratch.create(tmp_path / "run")
    attempt = run(AgyCoder(), work.spec("fl-test", {}), work, str(tmp_path / "bin"), timeout=20)
    assert attempt.exit_code == 1
    assert attempt.verdict.outcome == outcome
    assert attempt.verdict.reason.startswith("agy exited 1: Error:")
    assert not work.result_file.exists()


def test_resume_names_the_conversation(tmp_path: Path, fake_agy: Path) -> None:
    work = Scratch.create(tmp_path / "run")
    spec = work.spec("fl-test", {}, resume_session="conv-7", options={"print_timeout": "90m"})
    spec.result_file = work.workdir / "result.json"
    attempt = run(AgyCoder(), spec, work, str(tmp_path / "bin"), timeout=20)
    assert attempt.verdict.outcome == Outcome.SUCCESS
    argv = json.loads(fake_agy.read_text())["argv"]
    assert argv[argv.index("--conversation") + 1] == "conv-7"
    assert argv[argv.index("--print-timeout") + 1] == "90m"
    assert "--add-dir" not in argv


def test_a_model_or_permission_mode_it_cannot_honour_is_refused(tmp_path: Path) -> None:
    work = Scratch.create(tmp_path)
    with pytest.raises(ValueError, match="agy has no model flag"):
        AgyCoder().command(work.spec("fl-test", {}, model="gemini-3-pro"))
    with pytest.raises(ValueError, match="only with --dangerously-skip-permissions"):
        AgyCoder().command(work.spec("fl-test", {}, permission_mode="default"))


def test_failures_the_parser_tells_apart() -> None:
    parser = AgyParser()
    early = ["Looking at the rate limiter in the code...", "", "step 1", "step 2", "step 3"]
    for text in [*early, "step 4", "The model is overloaded."]:
        parser.feed(text)  # only the last lines tell why it failed
    assert parser.finish(1).outcome == Outcome.OVERLOADED
    assert parser.finish(-15) == Verdict(Outcome.FAILURE, "agy was killed by signal 15")
    quiet = AgyParser()
    assert quiet.finish(3) == Verdict(Outcome.FAILURE, "agy exited 3")
    assert quiet.usage.cost_usd is None and quiet.session_id == ""
