"""``redact()``: the one place where text bound for a report or a message loses its secrets.

Every ``Finding`` (message, fix, details; labels included) passes it when it is built, every
JSON report passes it in ``findings.dumps``, and every ``{{ value }}`` of an HTML report passes
it as the Jinja ``finalize`` hook; so an API key, card number, phone number or e-mail address
quoted from a row reaches no ``findings.json``, ``report.html``, ``leakage.html``, eval report or
terminal. It reuses the doctor's PII scanner (``tunerail.doctor.checks.pii.mask``): same
validation (Luhn, libphonenumber...), same placeholders (``[EMAIL]``, ``[SECRET]``...).

Data files the user asked for (``clean.jsonl``, split files) are not reports: they are masked
only with ``doctor.mask_pii``.
"""

from __future__ import annotations

import re
from typing import Any

# Hashes and ids (sha256, config fingerprints) are hex runs a card pattern could bite into.
_HEX_ID = re.compile(r"[0-9a-f]{16,}")
# Cheap pre-filter: text without an '@', 7 digits, a key prefix or a PEM header has nothing to mask.
_MAYBE = re.compile(
    r"@|(?:\d\D{0,3}){7}|AKIA|ASIA|gh[pousr]_|github_pat_|sk-|xox[abposr]-|AIza|_live_|eyJ|-----BEGIN|:[0-9A-Fa-f]{0,4}:|\d\.\d{1,3}\.\d"
)


def redact_text(text: str, phone_region: str = "US") -> str:
    """``text`` with personal data and secrets replaced by placeholders (idempotent)."""
    if not text or _HEX_ID.fullmatch(text) or not _MAYBE.search(text):
        return text
    from tunerail.doctor.checks.pii import mask

    return mask(text, phone_region)


def redact(value: Any, phone_region: str = "US") -> Any:
    """``value`` with every string in it redacted: dict keys (labels) and values, lists, tuples."""
    if isinstance(value, str):
        if hasattr(value, "__html__"):  # Markup we built ourselves (SVG); its text was redacted before
            return value
        return redact_text(value, phone_region)
    if isinstance(value, dict):
        return {redact(k, phone_region): redact(v, phone_region) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, phone_region) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v, phone_region) for v in value)
    return value
