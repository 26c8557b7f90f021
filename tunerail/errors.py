"""Errors a user can act on: each names the place (file, line, field) and a fix.

The CLI turns a ``TunerailError`` into a red message and exit code 2, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where} [{self.field}]" if where else f"[{self.field}]"
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text


@dataclass
class TunerailError(Exception):
    """An input the user must change; carries every problem found, not just the first."""

    problems: list[Problem] = field(default_factory=list)

    def __init__(self, problems: list[Problem] | Problem | str, *, fix: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(problems, fix=fix)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        return f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)


class ConfigError(TunerailError):
    """The YAML config is invalid."""


class DataError(TunerailError):
    """A data file cannot be read at all (single bad rows are quarantined instead)."""


class GuardrailError(TunerailError):
    """A guardrail refused to go on (small test set, changed frozen split, budget...)."""
