"""Personal data and secrets: e-mails, phone numbers, card numbers, IBANs, IP addresses, API keys.

Candidates come from patterns and are then validated, to keep false alarms low: card numbers
by the Luhn checksum and issuer prefix, IBANs by their ISO 13616 mod-97 checksum, phone numbers
by Google's libphonenumber (``phonenumbers``), IP addresses by ``ipaddress``. ``mask()`` replaces
every match with a placeholder for ``--fix`` with ``doctor.mask_pii``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from tunerail.doctor.checks._common import found, text_fields
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity


@dataclass(frozen=True)
class PiiMatch:
    kind: str  # email, phone, card, iban, ip, secret, private_key
    start: int
    end: int
    detail: str = ""  # e.g. the secret's provider; never the value itself


PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD_NUMBER]",
    "iban": "[IBAN]",
    "ip": "[IP_ADDRESS]",
    "secret": "[SECRET]",
    "private_key": "[PRIVATE_KEY]",
}

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_RESERVED_DOMAINS = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test|invalid|localhost))$", re.I)
_CARD = re.compile(r"(?<![\d.,-])(?:\d[ -]?){12,18}\d(?![\d-]|[.,]\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:[0-9A-Fa-f:]*)(?![\w:])")
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    "OpenAI key": re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe key": re.compile(r"\b[sr]k_live_[0-9A-Za-z]{16,}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
}
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----)?"
)
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2)|35)")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def scan(text: str, phone_region: str = "US") -> list[PiiMatch]:
    """Every validated match in ``text``, sorted by position, without overlaps."""
    found: list[PiiMatch] = []
    for m in _PRIVATE_KEY.finditer(text):
        found.append(PiiMatch("private_key", m.start(), m.end()))
    for provider, pattern in SECRET_PATTERNS.items():
        for m in pattern.finditer(text):
            found.append(PiiMatch("secret", m.start(), m.end(), provider))
    for m in _EMAIL.finditer(text):
        if not _RESERVED_DOMAINS.search(m.group(0)):
            found.append(PiiMatch("email", m.start(), m.end()))
    for m in _IBAN.finditer(text):
        if iban_valid(m.group(0)):
            found.append(PiiMatch("iban", m.start(), m.end()))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_valid(digits) and len(set(digits)) > 1:
            found.append(PiiMatch("card", m.start(), m.end()))
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                addr = ipaddress.ip_address(m.group(0))
            except ValueError:
                continue
            found.append(PiiMatch("ip", m.start(), m.end(), "public" if addr.is_global else "private or reserved"))
    if sum(ch.isdigit() for ch in text) >= 7:
        found.extend(_phones(text, phone_region))
    return _without_overlaps(found)


def _phones(text: str, region: str) -> list[PiiMatch]:
    import phonenumbers

    out = []
    for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        out.append(PiiMatch("phone", m.start, m.end))
    return out


_PRIORITY = {"private_key": 0, "secret": 1, "email": 2, "iban": 3, "card": 4, "ip": 5, "phone": 6}


def _without_overlaps(found: list[PiiMatch]) -> list[PiiMatch]:
    """Keep the most specific match where matches overlap (a card number is not also a phone)."""
    kept: list[PiiMatch] = []
    for m in sorted(found, key=lambda m: (_PRIORITY[m.kind], m.start)):
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: (m.start, m.end))


def mask(text: str, phone_region: str = "US") -> str:
    """``text`` with every match replaced by its placeholder (``[EMAIL]``, ``[CARD_NUMBER]``...)."""
    out, last = [], 0
    for m in scan(text, phone_region):
        out.append(text[last : m.start])
        out.append(PLACEHOLDERS[m.kind])
        last = m.end
    out.append(text[last:])
    return "".join(out)


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
    """API keys and tokens: AWS (AKIA...), GitHub (ghp_...), OpenAI (sk-...), Slack (xox...), Google, Stripe, JWT.

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
