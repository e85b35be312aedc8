"""User-facing errors: one line that names the problem and the fix, never a traceback."""

from __future__ import annotations


class QwenPipeError(Exception):
    """An error caused by the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.problem} (fix: {self.fix})" if self.fix else self.problem


def unknown_name(kind: str, name: str, choices: list[str] | tuple[str, ...]) -> QwenPipeError:
    """The standard error for a name that is not in a registry."""
    return QwenPipeError(f"unknown {kind} {name!r}", f"choose one of: {', '.join(sorted(choices))}")
