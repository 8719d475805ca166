"""The `shell` coder: runs the task's command with /bin/sh; its output lines are the log."""

from __future__ import annotations

from coders.base import BaseCoder, Command, Event, EventKind, Outcome, RunSpec, Usage, Verdict


class ShellParser:
    def __init__(self) -> None:
        self.usage = Usage()
        self.session_id = ""
        self.plan = ""

    def feed(self, line: str) -> list[Event]:
        return [Event(EventKind.TEXT, text=line)]

    def finish(self, exit_code: int) -> Verdict:
        if exit_code == 0:
            return Verdict(Outcome.SUCCESS)
        if exit_code == 127:
            return Verdict(Outcome.FAILURE, "the command was not found (exit 127)")
        if exit_code < 0:
            return Verdict(Outcome.FAILURE, f"the command was killed by signal {-exit_code}")
        return Verdict(Outcome.FAILURE, f"the command exited with {exit_code}")


class ShellCoder(BaseCoder):
    name = "shell"
    binary = "sh"
    verified = True
    needs_result = False  # the command's exit code is its result
    default_model = ""

    def command(self, spec: RunSpec) -> Command:
        if not spec.command.strip():
            raise ValueError(
                "a shell task needs a command: `fleet bd update ID --command 'make test'`"
            )
        return Command(argv=["/bin/sh", "-c", spec.command])

    def parser(self, spec: RunSpec | None = None) -> ShellParser:
        return ShellParser()
