"""``redact()``: the one place where text bound for a report or a message loses its secrets.

Every ``Finding`` (message, fix, details; labels included) passes it when it is built, every
JSON report passes it in ``findings.dumps``, and every ``{{ value }}`` of an HTML report passes
it as the Jinja ``finalize`` hook; so an API key, card number, phone number or e-mail address
quoted from a row reaches no ``findings.json``, ``report.html``, ``leakage.html``, eval report or
terminal. It reuses the one masker (``tunerail.pii.mask``, as the doctor, serve and review do):
same validation (Luhn, libphonenumber, detect-secrets...), same placeholders (``[EMAIL]``, ``[SECRET]``...).

Data files the user asked for (``clean.jsonl``, split files) are not reports: they are masked
only with ``doctor.mask_pii``.
"""

from __future__ import annotations

import re
from typing import Any

from tunerail.pii import mask, might_hold

# Hashes and ids (sha256, config fingerprints) are hex runs a card pattern could bite into.
_HEX_ID = re.compile(r"[0-9a-f]{16,}")


def redact_text(text: str, phone_region: str = "US") -> str:
    """``text`` with personal data and secrets replaced by placeholders (idempotent)."""
    if not text or _HEX_ID.fullmatch(text) or not might_hold(text):  # the cheap pre-filter: most text holds nothing
        return text
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
