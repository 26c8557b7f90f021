"""The one masker: personal data and secrets found in text, validated, and replaced by placeholders.

A leaf module (it imports no other tunerail module) so that findings, reports, the doctor's PII
checks, the serve traffic log, review records and tracking params all share it without an import
loop. Two families of detectors:

* Personal data from patterns, then validated to keep false alarms low: card numbers by the Luhn
  checksum and issuer prefix, IBANs by their ISO 13616 mod-97 checksum, phone numbers by Google's
  libphonenumber (``phonenumbers``), IP addresses by ``ipaddress``.
* Secrets from Yelp's ``detect-secrets`` plugins (AWS, GitHub, GitLab, Slack, Stripe, Twilio,
  SendGrid, Discord, Telegram, JWT, basic-auth URLs, Azure, IBM, npm, PyPI, OpenAI...) and its
  keyword patterns (``password: ...``, ``pwd=...``, ``api_key = "..."``), plus prose passwords
  ("my password is hunter2") and high-entropy tokens. detect-secrets works on lines and returns the
  value; here each pattern runs with ``finditer`` so the exact character span is masked, everywhere.

Notes
-----
High-entropy tokens are masked only when they mix upper case, lower case and digits (base64, at
detect-secrets' 4.5 bits limit) or are mixed-case or prefixed hex (``sgp_...``, 3.0 bits): bare
one-case hex runs are digests and ids (SHA-256, git commits, MD5, MLflow run ids) that reports print
on purpose, and are masked only after a credential keyword (``client_secret: "6da8..."``). Keyword values written without
quotes end at the first space and must look like a password (a digit, a symbol or inner capitals), so
"password: reset it below" keeps its words.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any


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
    "Slack token": re.compile(r"\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe key": re.compile(r"\b[sr]k_live_[0-9A-Za-z]{16,}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # Providers detect-secrets does not know (shapes from gitleaks' rules, MIT)
    "Hugging Face token": re.compile(r"\b(?:hf_[A-Za-z]{34}|api_org_[A-Za-z]{34})\b"),
    "1Password service token": re.compile(r"\bops_eyJ[A-Za-z0-9+/]{250,}={0,3}"),
    "Sentry token": re.compile(r"\bsntr[ysu]_[A-Za-z0-9+/=_-]{30,}"),
    "Azure AD client secret": re.compile(r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{30,34}(?![A-Za-z0-9_~.-])"),
    "1Password secret key": re.compile(r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b"),
    "Amazon Bedrock key": re.compile(r"\bABSK[A-Za-z0-9+/]{109,269}={0,2}"),
    "Slack webhook": re.compile(r"(?<=hooks\.slack\.com/)(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,}"),
    "Vault token": re.compile(r"\bhv[sb]\.[A-Za-z0-9_-]{90,}"),
    "Facebook token": re.compile(r"\b\d{15,16}(?:\||%7C)[A-Za-z0-9_-]{27}\b"),
}
# A credential after an Authorization scheme or curl's -u/--user (user:password)
_CREDENTIAL_ARGS = re.compile(
    r"(?i)(?:\bauthorization:\s*(?:basic|bearer|token)\s+|\bbearer\s+(?=[A-Za-z0-9._~+/-]{16,})|(?:\s-u|--user)\s+)"
    r"([\"']?)([^\s\"']+(?:\1|(?=[\s\"'])|$))"
)
# key = value where the key names a credential (detect-secrets' keyword list leaves out "token" and spaced colons)
_CREDENTIAL_KEY = re.compile(
    r"(?i)(?:token|secret|credentials?|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|auth[_-]?key|(?-i:\b[A-Z0-9_]{0,30}_KEY|\b[a-z0-9]{1,30}Key))"
    r"[\w.-]*[\"'\]]{0,2}\s*(?:[:?]{0,3}=>?|:)\s*[\"'`]?"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----)?"
)
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2)|35)")

# Prose: "my password is hunter2", "the wifi passcode was 'Tr0ub4dor&3'", "PIN: 4921".
_PROSE_SECRET = re.compile(
    r"\b(?:pass(?:word|wd|phrase|code)|pwd|pin|pin code|api[ _-]?key|access[ _-]?key|secret[ _-]?key|token)s?"
    r"(?:\s+(?:is|was|=|:|to|will be|remains|set to|changed to))+\s*[:=]?\s*[\"'“`]?([^\s\"'”`]+)",
    re.I,
)
# Anything a secret detector could fire on; text without it skips the secret detectors entirely.
SECRET_HINT = re.compile(
    r"(?i:pass|pwd|secret|key|token|auth|cred|pin\b|xox|bearer|\s-u\s|--user)|://[^\s/]*:[^\s/]*@|[A-Za-z0-9+/_-]{20,}|-----BEGIN|AKC|AP[\dA-F]\w{8}"
    r"|\dQ~|A3-|hooks\.slack"
)
# Cheap pre-filter for callers masking many short strings (reports): without an '@', 7 digits, an IP
# shape or a secret hint there is nothing to mask (``scan`` itself would find nothing either).
_MAYBE = re.compile(r"@|(?:\d\D{0,3}){7}|:[0-9A-Fa-f]{0,4}:|\d\.\d{1,3}\.\d")


def might_hold(text: str) -> bool:
    """False only when ``scan(text)`` is certainly empty; a few regex searches, no validation."""
    return bool(_MAYBE.search(text) or SECRET_HINT.search(text) or "eyJ" in text or "AIza" in text or "sk-" in text)


# a run of base64/hex characters; not one that continues a host name or a path (URLs are addresses, not keys)
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_.-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/_-])")
_HEX = re.compile(r"[0-9a-fA-F]+")
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,7}[_-](?:[A-Za-z0-9]{1,8}[_-])?")  # a provider prefix: sgp_, s-s4t2ud-
_TRAILING = ".,;:!?)]}"
_KEYWORD_HINT = re.compile(r"(?i)pass|pwd|secret|key|contrase")  # detect-secrets' keyword list, by its stems
_IDENTIFIER = re.compile(r"[a-z]+(?:[_.-][a-z]+)+|[a-z]+(?:[A-Z][a-z]+)+|(?:[a-z]+\.)+[a-z]+(?:[A-Z][a-z]+)*")
_WORD = re.compile(r"[A-Za-z][a-z]*(?:[A-Z][a-z]+)*[0-9]*|[A-Z]+[0-9]*|[0-9]+")


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


def shannon_entropy(value: str) -> float:
    """Bits per character, as detect-secrets computes it for its high-entropy plugins."""
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def scan(text: str, phone_region: str = "US") -> list[PiiMatch]:
    """Every validated match in ``text``, sorted by position, without overlaps."""
    found: list[PiiMatch] = []
    for m in _PRIVATE_KEY.finditer(text):
        found.append(PiiMatch("private_key", m.start(), m.end()))
    for provider, pattern in SECRET_PATTERNS.items():
        for m in pattern.finditer(text):
            found.append(PiiMatch("secret", m.start(), m.end(), provider))
    if SECRET_HINT.search(text):
        found.extend(_secrets(text))
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


@functools.cache
def _detectors() -> tuple[list[tuple[str, re.Pattern[str]]], list[tuple[re.Pattern[str], int]]]:
    """(provider, pattern) of every detect-secrets regex plugin, and its keyword patterns with the value's group.

    Imported on first use: detect-secrets loads ``requests`` (~0.1 s), which ``import tunerail`` must not pay.
    """
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins import keyword
    from detect_secrets.plugins.base import RegexBasedDetector

    skip = {"Public IP (ipv4)", "Private Key"}  # IPs are personal data (kind "ip"); key blocks are matched whole above
    providers: list[tuple[str, re.Pattern[str]]] = []
    cls: Any
    for name, cls in get_mapping_from_secret_type_to_class().items():
        if name not in skip and issubclass(cls, RegexBasedDetector):
            providers.extend((name, pattern) for pattern in cls.denylist)  # type: ignore[attr-defined]  # narrowed by issubclass
    groups: dict[re.Pattern[str], int] = {}
    for table in (
        keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        keyword.GOLANG_DENYLIST_REGEX_TO_GROUP,
        keyword.COMMON_C_DENYLIST_REGEX_TO_GROUP,
        keyword.C_PLUS_PLUS_REGEX_TO_GROUP,
        keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    ):
        groups.update(table)
    return providers, list(groups.items())


def _secrets(text: str) -> list[PiiMatch]:
    """detect-secrets' provider and keyword patterns, prose passwords and high-entropy tokens, as spans."""
    providers, keywords = _detectors()
    out: list[PiiMatch] = []
    for provider, pattern in providers:
        for m in pattern.finditer(text):
            out.append(PiiMatch("secret", *_value_span(m), provider))
    for lo, hi in _keyword_windows(text):  # keyword patterns have no literal prefix: run them near a keyword only
        chunk = text[lo:hi]
        for pattern, group in keywords:
            for m in pattern.finditer(chunk):
                config_key = "_" in chunk[m.start() : m.start(group)]  # aws_secret_access_key: ... is config, not prose
                span = _keyword_value(text, lo + m.start(group), lo + m.end(group), whole=config_key)
                if span:
                    out.append(PiiMatch("secret", *span, "keyword"))
    for m in _CREDENTIAL_ARGS.finditer(text):
        out.append(PiiMatch("secret", m.start(2), m.end(2) - len(m.group(1)), "credential"))
    for m in _CREDENTIAL_KEY.finditer(text):
        end = _value_end(text, m.end())
        span = _keyword_value(text, m.end(), end)
        if span:
            out.append(PiiMatch("secret", *span, "keyword"))
    for m in _PROSE_SECRET.finditer(text):
        span = _keyword_value(text, m.start(1), m.end(1))
        if span:
            out.append(PiiMatch("secret", *span, "password"))
    for m in _TOKEN.finditer(text):
        if _high_entropy(m.group(0)):
            out.append(PiiMatch("secret", m.start(), m.end(), "high-entropy token"))
    return [m for m in out if m.end > m.start]


def _keyword_windows(text: str) -> list[tuple[int, int]]:
    """Merged spans of the lines around each credential keyword (200 characters before, 400 after)."""
    windows: list[tuple[int, int]] = []
    for m in _KEYWORD_HINT.finditer(text):
        lo = max(text.rfind("\n", 0, m.start()) + 1, m.start() - 200)
        line_end = text.find("\n", m.end())
        hi = min(len(text) if line_end < 0 else line_end, m.end() + 400)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
        else:
            windows.append((lo, hi))
    return windows


def _value_span(m: re.Match[str]) -> tuple[int, int]:
    """The secret inside a provider match: its first non-empty group, else the match less its delimiters."""
    for g in range(1, (m.re.groups or 0) + 1):
        if m.group(g):
            return m.start(g), m.end(g)
    start, end = m.start(), m.end()
    while start < end and _delim(m.string[start]):
        start += 1
    while end > start and _delim(m.string[end - 1]):
        end -= 1
    return start, end


def _delim(ch: str) -> bool:
    return ch.isspace() or ch in "=:\"'`,;"


def _keyword_value(text: str, start: int, end: int, whole: bool = False) -> tuple[int, int] | None:
    """Span of a keyword's value if it looks like a secret; unquoted values end at the first space
    unless ``whole`` (the key is a config identifier such as ``db_pass``: the line's rest is its value)."""
    from detect_secrets.filters.heuristic import is_prefixed_with_dollar_sign, is_templated_secret

    quoted = start > 0 and text[start - 1] in "\"'`"
    value = text[start:end]
    if not quoted:
        value = (value.split("\n", 1)[0].rstrip() if whole else value.split(None, 1)[0]) if value.strip() else ""
        value = value.rstrip(_TRAILING) if value and value[-1] in _TRAILING and not _balanced(value) else value
    if len(value) < 4 or not any(ch.isalnum() for ch in value) or is_templated_secret(value) or is_prefixed_with_dollar_sign(value):
        return None
    if value.isalpha() and (value.islower() or value.istitle()) and (not quoted or len(value) <= 12):
        return None  # an ordinary word ("password: required"), not a password
    if _IDENTIFIER.fullmatch(value):
        return None  # a name (SORT_KEY: created_at, token = user.authToken), not a value
    return start, start + len(value)


def _value_end(text: str, start: int) -> int:
    """End of a value starting at ``start``: its closing quote if quoted, else the end of the line."""
    if start > 0 and text[start - 1] in "\"'`":
        close = text.find(text[start - 1], start)
        return close if close > 0 else len(text)
    stop = text.find("\n", start)
    return stop if stop >= 0 else len(text)


def _balanced(value: str) -> bool:
    return all(value.count(o) == value.count(c) for o, c in ("()", "[]", "{}")) and value[-1] in ")]}"


def _high_entropy(token: str) -> bool:
    """A random-looking token: hex above 3 bits/char (not a digest), or mixed-case base64 with digits above 4.5."""
    from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string

    if is_sequential_string(token) or is_potential_uuid(token):
        return False
    prefix = _PREFIX.match(token)
    rest = token[prefix.end() :] if prefix else token
    if len(rest) >= 20 and _HEX.fullmatch(rest):
        # bare one-case hex is a digest or an id (SHA-256, git commit, MD5, MLflow run): reports print them on purpose
        digest = not prefix and (rest.islower() or rest.isupper() or rest.isdigit())
        return not digest and any(ch.isalpha() for ch in rest) and shannon_entropy(rest) > 3.0
    body = token.rstrip("=")
    if "/" in body and all(_WORD.fullmatch(part) for part in body.split("/") if part):
        return False  # a path (Users/JaneDoe/Project2023), not a key
    if not (any(ch.isdigit() for ch in body) and any(ch.isupper() for ch in body) and any(ch.islower() for ch in body)):
        return False
    return shannon_entropy(body) > 4.5


_PRIORITY = {"private_key": 0, "secret": 1, "email": 2, "iban": 3, "card": 4, "ip": 5, "phone": 6}


def _without_overlaps(found: list[PiiMatch]) -> list[PiiMatch]:
    """Keep the most specific match where matches overlap (a card number is not also a phone)."""
    kept: list[PiiMatch] = []
    for m in sorted(found, key=lambda m: (_PRIORITY[m.kind], m.start, -(m.end - m.start))):
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


def mask_value(value: Any, phone_region: str = "US") -> Any:
    """``value`` with every string in it masked: dict keys and values, lists, tuples; other types as they are."""
    if isinstance(value, str):
        return mask(value, phone_region)
    if isinstance(value, dict):
        return {mask_value(k, phone_region): mask_value(v, phone_region) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_value(v, phone_region) for v in value)
    return value
