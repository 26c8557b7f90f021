"""Licence gate: read a candidate's licence from its model card, classify it, and decide.

The licence comes from the model card metadata (``huggingface_hub.ModelCard``: the ``README.md`` of a
local folder, a hub id's card from the local hub cache or the hub; bundled models carry theirs), and
is normalised to SPDX with ``license-expression`` where it is an SPDX licence. Hub licence ids that
are not SPDX (``gemma``, ``llama3.1``, ``openrail``...) are looked up in :data:`HUB_LICENCES`.

Classes
-------
- ``permissive``: commercial use without extra terms (Apache-2.0, MIT, BSD, ISC, CC-BY...).
- ``conditional``: commercial use under named conditions (Gemma terms, Llama community licences,
  OpenRAIL use restrictions, share-alike/copyleft). The condition is quoted in the finding.
- ``non_commercial``: CC-BY-NC-*, research-only licences, ``other`` whose name says so.
- ``unknown``: no card, no licence field, ``other`` or a name we cannot classify.

With ``project.commercial: true`` (the default) non-commercial is an error (SEL001) that makes the
candidate ineligible and blocks `run` from training it; unknown needs the model listed in
``model.license_acknowledged`` (SEL002 error otherwise, SEL004 records the acknowledgement);
conditional is a warning quoting the condition (SEL003).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunerail.findings import Finding, Severity

LicenceClass = Literal["permissive", "conditional", "non_commercial", "unknown"]

_PERMISSIVE_SPDX = re.compile(
    r"^(Apache-\d|MIT|BSD-|0BSD|ISC|Zlib|Unlicense|CC0-|CC-BY-\d|BSL-1\.0|AFL-|PostgreSQL|NCSA|X11|"
    r"MPL-|Artistic-|PSF-|Python-|OpenSSL|UPL-|ECL-|EPL-|MS-PL)",
    re.IGNORECASE,
)
_COPYLEFT_SPDX = re.compile(r"^(GPL-|AGPL-|LGPL-|CC-BY-SA-|EUPL-|OSL-|CDDL-|ODbL-)", re.IGNORECASE)
_NON_COMMERCIAL = re.compile(r"(^|[-_ ])nc([-_ ]|$)|non[-_ ]?commercial|research[-_ ]?only|research|academic", re.IGNORECASE)

_GEMMA = (
    "Gemma Terms of Use: use must follow the Gemma Prohibited Use Policy, and anyone you share the model "
    "or a derivative with must receive the same restrictions and a copy of the terms"
)
_LLAMA = (
    "Llama community licence: a licence from Meta is required above 700 million monthly active users, "
    'the Acceptable Use Policy applies, and products must display "Built with Llama"'
)
_OPENRAIL = "OpenRAIL: the use-based restrictions (Attachment A) apply to you and must be passed on to every downstream user"

# Hub licence ids (the model card `license:` vocabulary) that are not SPDX identifiers.
HUB_LICENCES: dict[str, tuple[LicenceClass, str]] = {
    "gemma": ("conditional", _GEMMA),
    **{k: ("conditional", _LLAMA) for k in ("llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4")},
    **{
        k: ("conditional", _OPENRAIL)
        for k in (
            "openrail",
            "openrail++",
            "bigscience-openrail-m",
            "creativeml-openrail-m",
            "bigscience-bloom-rail-1.0",
            "bigcode-openrail-m",
        )
    },
    "deepseek": ("conditional", "DeepSeek licence: use-based restrictions (Attachment A) apply and must be passed on"),
}
_COPYLEFT_CONDITION = "share-alike: derivatives (including a fine-tuned model) must be released under the same licence"


@dataclass
class Licence:
    """What a candidate's card says, normalised: ``raw`` as written, ``spdx`` where it is SPDX."""

    raw: str | None
    spdx: str | None
    licence_class: LicenceClass
    condition: str = ""
    name: str | None = None  # card `license_name` (for `other`)
    link: str | None = None  # card `license_link`
    source: str = ""  # where it was read: README path, hub id, bundled package
    languages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_card(candidate: str, resolved: str | None = None) -> tuple[dict[str, Any], str]:
    """(card metadata, source) for a local folder, a bundled model or a hub id; ``{}`` when none.

    Hub ids are read from the local hub cache when offline (``HF_HUB_OFFLINE=1``), else from the hub.
    """
    from tunerail.models import BUNDLED

    if candidate.startswith("bundled:"):
        spec = BUNDLED.get(candidate.split(":", 1)[1])
        if spec is not None:
            return {"license": spec.licence.lower() or None}, f"bundled package {spec.pip_name}"
    folder = Path(resolved or candidate)
    if folder.is_dir():
        readme = folder / "README.md"
        if not readme.exists():
            return {}, f"{folder} (no README.md)"
        return _card_data(readme), str(readme)
    try:
        from huggingface_hub import ModelCard

        return ModelCard.load(candidate, ignore_metadata_errors=True).data.to_dict(), f"hub card of {candidate}"
    except Exception as exc:  # offline and not cached, gated, no card: the licence is unknown
        return {}, f"hub card of {candidate} not available ({type(exc).__name__})"


def _card_data(readme: Path) -> dict[str, Any]:
    from huggingface_hub import ModelCard

    return ModelCard.load(readme, ignore_metadata_errors=True).data.to_dict()


def classify(card: dict[str, Any], source: str = "") -> Licence:
    """Normalise and classify the card's ``license`` (+ ``license_name`` for ``other``). Pure."""
    raw = card.get("license")
    if isinstance(raw, list):
        raw = " OR ".join(str(r) for r in raw)  # a list means any of them
    raw = str(raw).strip() if raw else None
    name, link = card.get("license_name"), card.get("license_link")
    languages = card.get("language") or []
    languages = [languages] if isinstance(languages, str) else [str(x) for x in languages]
    lic = Licence(raw, None, "unknown", name=name, link=link, source=source, languages=languages)
    if raw is None:
        lic.condition = "the card declares no licence"
        return lic
    key = raw.lower()
    if key in HUB_LICENCES:
        lic.licence_class, lic.condition = HUB_LICENCES[key]
        return lic
    if key == "other":
        if name and _NON_COMMERCIAL.search(str(name)):
            lic.licence_class, lic.condition = "non_commercial", f"licence {name!r}"
        else:
            lic.condition = f"custom licence {name or '(unnamed)'}" + (f" at {link}" if link else "")
        return lic
    spdx = _spdx(raw)
    lic.spdx = spdx
    if spdx is None:
        if _NON_COMMERCIAL.search(raw):
            lic.licence_class, lic.condition = "non_commercial", f"licence {raw!r}"
        else:
            lic.condition = f"{raw!r} is neither an SPDX id nor a known hub licence"
        return lic
    lic.licence_class, lic.condition = _classify_spdx(spdx)
    return lic


def _spdx(raw: str) -> str | None:
    from license_expression import get_spdx_licensing

    info = get_spdx_licensing().validate(raw)
    return info.normalized_expression if not info.errors else None


_RANK = {"permissive": 0, "conditional": 1, "unknown": 2, "non_commercial": 3}


def _classify_spdx(expression: str) -> tuple[LicenceClass, str]:
    """An SPDX expression: for ``A OR B`` the most permissive choice counts, for ``A AND B`` the strictest."""
    from license_expression import get_spdx_licensing

    licensing = get_spdx_licensing()
    parsed = licensing.parse(expression)
    operator = getattr(parsed, "operator", "").strip()
    keys = [s.key for s in licensing.license_symbols(parsed)]
    classes = [_one_spdx(k) for k in keys]
    pick = min if operator == "OR" else max
    return pick(classes, key=lambda c: _RANK[c[0]])


def _one_spdx(key: str) -> tuple[LicenceClass, str]:
    if _NON_COMMERCIAL.search(key):
        return "non_commercial", f"{key} forbids commercial use"
    if _COPYLEFT_SPDX.match(key):
        return "conditional", f"{key} {_COPYLEFT_CONDITION}"
    if _PERMISSIVE_SPDX.match(key):
        return "permissive", ""
    return "unknown", f"{key} is not in tunerail's licence table"


def gate(candidate: str, lic: Licence, *, commercial: bool, acknowledged: list[str]) -> list[Finding]:
    """SEL001-SEL004 for one candidate; an ERROR makes it ineligible (and blocks `run` from training it)."""
    shown = lic.spdx or lic.raw or "none"
    details = {"candidate": candidate, **lic.to_dict()}
    if lic.licence_class == "non_commercial":
        if not commercial:
            return [
                Finding(
                    "licence.non_commercial",
                    Severity.INFO,
                    f"{candidate}: licence {shown} is non-commercial; allowed because project.commercial is false",
                    "keep the fine-tuned model out of commercial use",
                    code="SEL001",
                    details=details,
                )
            ]
        return [
            Finding(
                "licence.non_commercial",
                Severity.ERROR,
                f"{candidate}: licence {shown} forbids commercial use ({lic.condition}), and project.commercial is true",
                "choose a permissively licensed candidate, or set project.commercial: false if the use is not commercial",
                code="SEL001",
                details=details,
            )
        ]
    if lic.licence_class == "unknown":
        if candidate in acknowledged:
            return [
                Finding(
                    "licence.acknowledged",
                    Severity.INFO,
                    f"{candidate}: licence {shown} ({lic.condition}) acknowledged in model.license_acknowledged",
                    "nothing to do; the acknowledgement is recorded in select.json",
                    code="SEL004",
                    details=details,
                )
            ]
        severity = Severity.ERROR if commercial else Severity.WARNING
        return [
            Finding(
                "licence.unknown",
                severity,
                f"{candidate}: licence {shown} cannot be classified ({lic.condition}; read from {lic.source})",
                f"review the licence, then add {candidate!r} to model.license_acknowledged",
                code="SEL002",
                details=details,
            )
        ]
    if lic.licence_class == "conditional":
        return [
            Finding(
                "licence.conditional",
                Severity.WARNING,
                f"{candidate}: licence {shown} allows commercial use under conditions: {lic.condition}",
                "check that your use meets the conditions before you ship",
                code="SEL003",
                details=details,
            )
        ]
    return []
