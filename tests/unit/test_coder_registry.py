"""The coder registry: every built-in satisfies the `Coder` protocol, and a third-party coder
installed under the `fleet.coders` entry-point group is found, with `BaseCoder`'s defaults."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import coders
from coders.agy import AgyCoder
from coders.base import Coder, Parser, RunSpec
from coders.claude import ClaudeCoder
from coders.codex.adapter import CodexCoder
from coders.gemini import GeminiCoder
from coders.opencode import OpencodeCoder
from coders.shell import ShellCoder

PLUGIN = """
from coders.base import BaseCoder, Command, Event, EventKind, Outcome, RunSpec, Usage, Verdict


class EchoParser:
    def __init__(self) -> None:
        self.usage, self.session_id, self.plan = Usage(), "", ""

    def feed(self, line: str) -> list[Event]:
        return [Event(EventKind.TEXT, text=line)]

    def finish(self, exit_code: int) -> Verdict:
        return Verdict(Outcome.SUCCESS if exit_code == 0 else Outcome.FAILURE)


class EchoCoder(BaseCoder):
    name = "echo"
    binary = "echo"
    verified = False
    needs_result = False
    default_model = ""

    def command(self, spec: RunSpec) -> Command:
        return Command(argv=[self.binary, spec.prompt])

    def parser(self, spec: RunSpec | None = None) -> EchoParser:
        return EchoParser()
"""


@pytest.mark.parametrize(
    ("name", "cls", "binary", "model", "verified", "needs_result"),
    [
        ("claude", ClaudeCoder, "claude", "sonnet", True, True),
        ("codex", CodexCoder, "codex", "gpt-5.5", True, True),
        ("gemini", GeminiCoder, "gemini", "gemini-2.5-pro", True, True),
        ("opencode", OpencodeCoder, "opencode", "anthropic/claude-sonnet-4-5", True, True),
        ("agy", AgyCoder, "agy", "", False, True),
        ("shell", ShellCoder, "sh", "", True, False),
    ],
)
def test_each_builtin_is_a_coder(
    tmp_path: Path,
    name: str,
    cls: type,
    binary: str,
    model: str,
    verified: bool,
    needs_result: bool,
) -> None:
    coder = coders.get(name)
    assert isinstance(coder, cls) and isinstance(coder, Coder)
    assert (coder.name, coder.binary, coder.default_model) == (name, binary, model)
    assert (coder.verified, coder.needs_result) == (verified, needs_result)
    assert not hasattr(coder, "mock_handler"), "the check harness keeps the mocks"
    assert isinstance(coder.parser(spec_in(tmp_path)), Parser)


def spec_in(tmp_path: Path, **fields: object) -> RunSpec:
    return RunSpec("fl-1", 1, "hi", tmp_path, tmp_path / "r.json", **fields)  # type: ignore[arg-type]


def test_no_side_events_where_the_cli_wrote_none(tmp_path: Path) -> None:
    spec = spec_in(tmp_path, config_dir=tmp_path)
    assert {name: coders.get(name).side_events(spec, "s-1") for name in coders.BUILTINS} == {
        name: [] for name in coders.BUILTINS
    }


@pytest.fixture
def echo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution whose `fleet.coders` entry point names `echo`."""
    (tmp_path / "fleet_echo.py").write_text(PLUGIN)
    dist = tmp_path / "fleet_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fleet-echo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fleet.coders]\necho = fleet_echo:EchoCoder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("fleet_echo", None)


@pytest.mark.usefixtures("echo_plugin")
def test_a_third_party_coder_comes_from_its_entry_point(tmp_path: Path) -> None:
    assert coders.names()[-1] == "echo"
    coder = coders.get("echo")
    assert isinstance(coder, Coder)
    assert (coder.key_env, coder.base_url_env) == ("", "")
    spec = spec_in(tmp_path)
    assert coder.command(spec).argv == ["echo", "hi"]
    assert coder.side_events(spec, "") == []
    with pytest.raises(KeyError):
        coders.get("no-such-coder")
