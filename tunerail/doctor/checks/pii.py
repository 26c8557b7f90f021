"""The doctor's personal-data and secret checks: thin registered checks over the one masker.

Detection, validation (Luhn, IBAN mod-97, libphonenumber, ipaddress, detect-secrets) and the
placeholders live in ``tunerail.pii``, shared with reports, serve, review and tracking; these
checks only turn its matches into findings. ``--fix`` with ``doctor.mask_pii`` masks with the same.
"""

from __future__ import annotations

from tunerail.doctor.checks._common import found, text_fields
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity
from tunerail.pii import PiiMatch, scan


def _row_matches(ctx: CheckContext) -> list[list[tuple[str, PiiMatch]]]:
    """(field, match) per record, computed once and shared by the PII checks of one run."""
    if ctx.pii_matches is None:
        region = ctx.config.doctor.phone_region
        ctx.pii_matches = [[(name, m) for name, text in text_fields(rec, ctx) for m in scan(text, region)] for rec in ctx.records]
    return ctx.pii_matches


_WHAT = {
    "email": "an e-mail address",
    "phone": "a phone number",
    "card": "a payment card number (Luhn-valid)",
    "iban": "an IBAN (checksum-valid)",
    "ip": "an IP address",
    "secret": "a secret",
    "private_key": "a private key",
}


def _findings(ctx: CheckContext, kind: str, severity: Severity, fix: str) -> list[Finding]:
    out = []
    for rec, matches in zip(ctx.records, _row_matches(ctx)):
        hits = [(name, m) for name, m in matches if m.kind == kind]
        if not hits:
            continue
        fields = sorted({name for name, _ in hits})
        detail = sorted({m.detail for _, m in hits if m.detail})
        what = _WHAT[kind] + (f" ({', '.join(detail)})" if detail else "")
        sev = Severity.INFO if kind == "ip" and all(m.detail != "public" for _, m in hits) else severity
        out.append(
            found(
                sev,
                f"{len(hits)} × {what} in field(s) {', '.join(fields)}",
                fix,
                rows=[rec.ref],
                details={"fields": fields, "count": len(hits), **({"kinds": detail} if detail else {})},
            )
        )
    return out


_MASK_FIX = "remove or pseudonymise it at the source; --fix with doctor.mask_pii: true replaces it with a placeholder"


@register("DOC035", "pii.email")
def email(ctx: CheckContext) -> list[Finding]:
    """E-mail addresses (reserved example domains such as example.com are ignored).

    Anti-pattern: a model fine-tuned on support logs repeats customers' addresses. Fix: mask.
    Deliberately not flagged (nor masked): addresses at the documentation domains reserved by
    RFC 2606 / RFC 6761 (example.com/.org/.net and any ``.example``, ``.test``, ``.invalid``,
    ``.localhost`` name): no mailbox can exist there, so they are placeholders, not personal data.
    """
    return _findings(ctx, "email", Severity.WARNING, _MASK_FIX)


@register("DOC036", "pii.phone")
def phone(ctx: CheckContext) -> list[Finding]:
    """Phone numbers that libphonenumber considers valid (``doctor.phone_region`` for national numbers).

    Fix: mask them before training.
    """
    return _findings(ctx, "phone", Severity.WARNING, _MASK_FIX)


@register("DOC037", "pii.card_number")
def card_number(ctx: CheckContext) -> list[Finding]:
    """Payment card numbers: 13-19 digits with a card issuer prefix and a valid Luhn checksum.

    Anti-pattern: card numbers in training data are a compliance breach (PCI DSS). Fix: mask.
    """
    return _findings(ctx, "card", Severity.ERROR, _MASK_FIX)


@register("DOC038", "pii.iban")
def iban(ctx: CheckContext) -> list[Finding]:
    """Bank account numbers (IBAN) whose mod-97 checksum is valid.

    Fix: mask them before training.
    """
    return _findings(ctx, "iban", Severity.WARNING, _MASK_FIX)


@register("DOC039", "pii.ip_address")
def ip_address(ctx: CheckContext) -> list[Finding]:
    """IPv4/IPv6 addresses; public ones are personal data (warning), private or documentation ranges info.

    Fix: mask public addresses; private ones are usually harmless examples.
    """
    return _findings(ctx, "ip", Severity.WARNING, _MASK_FIX)


@register("DOC040", "secrets.token")
def token(ctx: CheckContext) -> list[Finding]:
    """Secrets: API keys and tokens (AWS, GitHub, OpenAI, Slack, Google, Stripe, JWT and the other
    detect-secrets providers), passwords (``password: ...``, ``pwd=...``, "my password is ..."),
    basic-auth URLs and high-entropy tokens.

    Anti-pattern: a model can reproduce a key verbatim from its training data. Fix: revoke the
    key now, then mask it in the data.
    """
    return _findings(ctx, "secret", Severity.ERROR, "revoke the key, then mask it (--fix with doctor.mask_pii: true)")


@register("DOC041", "secrets.private_key")
def private_key(ctx: CheckContext) -> list[Finding]:
    """Private key blocks (``-----BEGIN ... PRIVATE KEY-----``).

    Fix: revoke the key, then remove it from the data.
    """
    return _findings(ctx, "private_key", Severity.ERROR, "revoke the key, then remove it (--fix with doctor.mask_pii: true)")
