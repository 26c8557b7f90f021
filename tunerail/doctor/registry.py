"""The check registry: each check is a small function ``(ctx) -> list[Finding]`` with a stable code.

A check module registers its functions with ``@register``; ``CHECK_MODULES`` lists the modules
the doctor imports. A check whose inputs are unavailable (no labels, semantic checks switched
off) returns nothing; a check that crashes becomes an error finding, never silence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

from tunerail.doctor.context import CheckContext
from tunerail.findings import Finding
from tunerail.names import DOCTOR_CHECKS

CheckFn = Callable[[CheckContext], list[Finding]]


@dataclass(frozen=True)
class Check:
    code: str  # stable short code, e.g. DOC010
    name: str  # dotted name, e.g. duplicates.exact
    func: CheckFn
    description: str  # what it catches (first docstring line)
    needs: frozenset[str] = field(default_factory=frozenset)  # "embeddings", "tokenizer", "labels", "end_model"


_REGISTRY: dict[str, Check] = {}

# Modules whose import registers checks (order = report order).
CHECK_MODULES: list[str] = [
    "tunerail.doctor.checks.format",
    "tunerail.doctor.checks.exact",
    "tunerail.doctor.checks.lengths",
    "tunerail.doctor.checks.unfinished",
    "tunerail.doctor.checks.content",
    "tunerail.doctor.checks.instruct",
    "tunerail.doctor.checks.pii",
    "tunerail.doctor.checks.language",
    "tunerail.doctor.checks.balance",
    "tunerail.doctor.checks.similarity",
    "tunerail.doctor.checks.label_quality",
    "tunerail.doctor.checks.preference",
]


def register(code: str, name: str, needs: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    """Decorator: add a check to the registry under a stable code and dotted name.

    The pair must be listed in ``tunerail.names.DOCTOR_CHECKS`` (the table the config checks
    ``doctor.disabled_checks`` against), so the names users type and the checks that run agree.
    """
    if DOCTOR_CHECKS.get(code) != name:
        # the config validates doctor.disabled_checks against that table, so a check missing there could not be disabled
        listed = f"lists {code} as {DOCTOR_CHECKS[code]!r}" if code in DOCTOR_CHECKS else f"has no {code}"
        raise ValueError(f"check {code} {name!r}: tunerail/names.py DOCTOR_CHECKS {listed}; add or correct its line there")

    def decorate(func: CheckFn) -> CheckFn:
        if code in _REGISTRY and _REGISTRY[code].func.__wrapped__ is not func:  # type: ignore[attr-defined]
            raise ValueError(f"check code {code} registered twice ({_REGISTRY[code].name}, {name})")

        @functools.wraps(func)
        def stamped(ctx: CheckContext) -> list[Finding]:
            """The check's findings carry the name and code registered here: typed once, never drifting."""
            found = list(func(ctx))
            for f in found:
                f.check, f.code = name, code
            return found

        doc = (func.__doc__ or name).strip().splitlines()[0]
        _REGISTRY[code] = Check(code, name, stamped, doc, frozenset(needs))
        return stamped

    return decorate


def all_checks() -> list[Check]:
    """Every registered check, importing the check modules on first use."""
    for module in CHECK_MODULES:
        import_module(module)
    return sorted(_REGISTRY.values(), key=lambda c: c.code)
