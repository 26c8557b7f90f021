"""Inputs the doctor's checks share are declared on the check context, computed once, read by name."""

from __future__ import annotations

from tunerail.config import TunerailConfig
from tunerail.data.records import Record, RowRef
from tunerail.doctor.context import CheckContext
from tunerail.doctor.recipe import _row_stats
from tunerail.doctor.registry import all_checks

ROWS = [
    ("How do I reset my card PIN? Mail me at jane.doe@gmail.com please", "card"),
    ("How do I reset my card PIN? Mail me at jane.doe@gmail.com", "pin"),
    ("Quiero cancelar la transferencia que hice ayer por la tarde, por favor", "transfer"),
    ("Why was I charged twice for the same coffee this morning at the station", "charge"),
]


def _ctx() -> CheckContext:
    recs = [Record(RowRef(i, i + 2, "d.csv"), "text_label", [], text, label, label) for i, (text, label) in enumerate(ROWS)]
    return CheckContext(recs, [], TunerailConfig(task="classification", doctor={"language": "en"}), "text_label")


def _run(ctx: CheckContext, prefix: str) -> list:
    return [f for c in all_checks() if c.name.startswith(prefix) for f in c.func(ctx)]


def test_shared_inputs_are_declared_fields_filled_once_by_the_first_check(monkeypatch):
    import tunerail.doctor.checks.pii as pii

    ctx = _ctx()
    assert ctx.pii_matches is None and ctx.languages is None and ctx.near_prompt_edges is None
    calls = []
    scan = pii.scan
    monkeypatch.setattr(pii, "scan", lambda text, region="US": calls.append(text) or scan(text, region))
    found = _run(ctx, "pii.")
    assert {f.check for f in found} == {"pii.email"} and {r.index for f in found for r in f.rows} == {0, 1}
    assert len(calls) == len(ROWS)  # seven PII checks, one scan per text field
    assert [len(m) for m in ctx.pii_matches] == [1, 1, 0, 0] and ctx.pii_matches[0][0][1].kind == "email"

    _run(ctx, "language.mismatch")
    assert ctx.languages is not None and ctx.languages[2][0] == "es" and ctx.languages[0][0] == "en"
    assert _row_stats(ctx, [])["languages"]["es"] == 1  # the report reads the same field
    assert "token_lengths" not in _row_stats(ctx, []) and ctx.token_lengths_if_computed is None

    from tunerail.doctor.checks.similarity import _near_prompt_edges  # what labels.conflict reads (the check itself takes 10 s)

    assert _near_prompt_edges(ctx) == [(0, 1)] and ctx.near_prompt_edges == [(0, 1)]  # near-same prompts, different labels
