"""``lengths.unfinished`` (issue 25 §3): cuts at a word boundary that only meaning shows, found by SmolLM2's end-of-turn odds.

Real Alpaca rows (the development data of ``bench/doctor_unseen.py``); the cuts are the kind the
rules of ``lengths.cut_off`` miss on that data: "This individual" of "This individual had a face
covering on.", "He completed" of "He completed the painting.", a list stopped after an item.
"""

from __future__ import annotations

import pytest

from doctor_helpers import alpaca, flagged, run, write_jsonl
from tunerail.data.loaders import load_records
from tunerail.doctor.checks.lengths import answer_style, cut_off_reason

# Alpaca row -> its answer cut at a word boundary (a complete-looking phrase, a list's first items)
CUTS = {
    755: "This individual",
    4820: "He completed",
    4639: "Pig - Mammal\nChicken",
    2156: "Three types of machine learning algorithms are supervised learning, unsupervised",
}


def _rows(shared_data):
    data = alpaca(shared_data)
    clean = [r for r in data[:200] if r["output"].strip()][:46]
    return data, clean + [{**data[i], "output": cut} for i, cut in CUTS.items()]


def test_the_rules_miss_these_cuts(shared_data):
    """The premise: on all 5,000 Alpaca answers, lengths.cut_off's rules pass every one of these cuts."""
    data = alpaca(shared_data)
    style = answer_style([r["output"] for r in data], [r["instruction"] + "\n" + r["input"] for r in data])
    assert [cut_off_reason(cut, style=style, context=data[i]["instruction"] + "\n" + data[i]["input"]) for i, cut in CUTS.items()] == [
        None
    ] * len(CUTS)


@pytest.mark.slow
def test_end_scores_read_the_end_of_turn_after_the_answer_and_before_its_last_word(tmp_path, shared_data):
    from tunerail.doctor.end_scores import end_scores
    from tunerail.models import load_causal_lm, load_tokenizer

    data = alpaca(shared_data)
    whole = [data[i] for i in CUTS]
    shorter = [{**r, "output": r["output"].rstrip().rsplit(None, 1)[0]} for r in whole]  # the answer without its last word
    cut = [{**data[i], "output": text} for i, text in CUTS.items()]
    records = load_records(write_jsonl(tmp_path / "rows.jsonl", whole + shorter + cut))[0]
    tokenizer, model = load_tokenizer("bundled:smollm2"), load_causal_lm("bundled:smollm2").eval()
    scores = end_scores(model, tokenizer, records)
    n = len(CUTS)
    for w, s in zip(scores[:n], scores[n : 2 * n]):
        assert w.before_last == pytest.approx(s.full, abs=0.02)  # read in the same pass as the whole answer's end
    for w, c in zip(scores[:n], scores[2 * n :]):
        assert c.finish < w.finish - 4  # a finished answer ends (or closes and ends) next; a cut one, e^4 times less likely


@pytest.mark.slow
def test_unfinished_names_the_cut_rows_and_no_clean_one(tmp_path, shared_data):
    from tunerail.doctor.end_scores import CACHE_STATS

    data, rows = _rows(shared_data)
    path = write_jsonl(tmp_path / "alpaca.jsonl", rows)
    result = run(path, model_checks=True)
    planted = set(range(len(rows) - len(CUTS), len(rows)))
    assert flagged(result, "lengths.unfinished") == planted
    assert not flagged(result, "lengths.cut_off") & planted  # only the meaning signal sees them
    (finding, *_) = [f for f in result.findings if f.check == "lengths.unfinished"]
    assert finding.code == "DOC019" and "robust SDs below" in finding.message and finding.details["finish_logprob"] < -5
    scored = CACHE_STATS["scored"]
    again = run(path, model_checks=True)  # a re-run reads the cache: no row scored again
    assert CACHE_STATS["scored"] == scored and flagged(again, "lengths.unfinished") == planted
