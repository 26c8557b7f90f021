"""Licence gate of `tunerail select`: each class read from real model-card READMEs in local folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunerail.findings import Severity
from tunerail.select.licence import classify, gate, read_card


def _folder(tmp_path: Path, name: str, front_matter: str | None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    if front_matter is not None:
        (folder / "README.md").write_text(f"---\n{front_matter}\n---\n\n# {name}\n\nA model card.\n", encoding="utf-8")
    return folder


def _check(folder: Path, *, commercial: bool = True, acknowledged: tuple[str, ...] = ()):
    card, source = read_card(str(folder))
    lic = classify(card, source)
    return lic, gate(str(folder), lic, commercial=commercial, acknowledged=list(acknowledged))


@pytest.mark.parametrize(
    "licence, spdx",
    [
        ("apache-2.0", "Apache-2.0"),
        ("mit", "MIT"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("Apache-2.0 OR CC-BY-NC-4.0", "Apache-2.0 OR CC-BY-NC-4.0"),
    ],
)
def test_permissive_cards_pass_without_findings(tmp_path, licence, spdx):
    lic, findings = _check(_folder(tmp_path, "m", f"license: {licence}\nlanguage:\n- en"))
    assert (lic.licence_class, lic.spdx, findings) == ("permissive", spdx, [])
    assert lic.languages == ["en"]


@pytest.mark.parametrize(
    "front",
    [
        "license: cc-by-nc-4.0",
        "license: cc-by-nc-sa-4.0",
        "license: MIT AND CC-BY-NC-4.0",
        "license: other\nlicense_name: acme-research-only-license",
    ],
)
def test_non_commercial_blocks_a_commercial_project(tmp_path, front):
    folder = _folder(tmp_path, "nc", front)
    lic, findings = _check(folder)
    assert lic.licence_class == "non_commercial"
    assert [(f.code, f.severity) for f in findings] == [("SEL001", Severity.ERROR)]
    assert str(folder) in findings[0].message and "commercial" in findings[0].message
    _, relaxed = _check(folder, commercial=False)
    assert [(f.code, f.severity) for f in relaxed] == [("SEL001", Severity.INFO)]


@pytest.mark.parametrize("front", [None, "tags:\n- text-generation", "license: other", "license: acme-custom-1.0"])
def test_unknown_or_other_needs_an_acknowledgement_which_is_recorded(tmp_path, front):
    folder = _folder(tmp_path, "unk", front)
    lic, findings = _check(folder)
    assert lic.licence_class == "unknown"
    assert [(f.code, f.severity) for f in findings] == [("SEL002", Severity.ERROR)]
    assert "license_acknowledged" in findings[0].fix
    _, acknowledged = _check(folder, acknowledged=(str(folder),))
    assert [(f.code, f.severity) for f in acknowledged] == [("SEL004", Severity.INFO)]


@pytest.mark.parametrize(
    "licence, quoted",
    [("gemma", "Prohibited Use Policy"), ("llama3.1", "700 million"), ("gpl-3.0", "share-alike"), ("openrail", "use-based restrictions")],
)
def test_conditional_warns_and_quotes_the_condition(tmp_path, licence, quoted):
    lic, findings = _check(_folder(tmp_path, "cond", f"license: {licence}"))
    assert lic.licence_class == "conditional"
    assert [(f.code, f.severity) for f in findings] == [("SEL003", Severity.WARNING)]
    assert quoted in findings[0].message


def test_bundled_models_carry_their_licences():
    smol = classify(*read_card("bundled:smollm2"))
    gemma = classify(*read_card("bundled:gemma3"))
    assert (smol.licence_class, smol.spdx) == ("permissive", "Apache-2.0")
    assert gemma.licence_class == "conditional" and "Gemma" in gemma.condition


def test_hub_card_unavailable_offline_is_unknown(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lic = classify(*read_card("tunerail-test/no-such-model-anywhere"))
    assert lic.licence_class == "unknown" and "not available" in lic.source
