"""The delexicalised nearest neighbour on real E2E records, and the bundled E2E example's config and data."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tunerail.config import load_config
from tunerail.data.loaders import load_records
from tunerail.eval import alternatives as A
from tunerail.eval.alternatives.delex import DELEX_NEIGHBOUR, delexicalise, fill, parse_record

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "e2e"
FIT, TEST = 300, 60


def _rows() -> list[dict]:
    return [json.loads(x) for x in (EXAMPLE / "restaurants.jsonl").read_text(encoding="utf-8").splitlines()]


def _data(rows: list[dict]) -> A.FitData:
    fit, test = rows[:FIT], rows[FIT : FIT + TEST]
    return A.FitData("generation", [r["mr"] for r in fit], [r["text"] for r in fit], [], [], [r["mr"] for r in test])


def test_parse_record_reads_each_form_and_refuses_prose():
    assert parse_record("name[The Eagle], eatType[coffee shop], eatType[restaurant]") == [
        ("name", "The Eagle"),
        ("eatType", "coffee shop"),
        ("eatType", "restaurant"),
    ]
    assert parse_record('{"name": "The Eagle", "stars": 4}') == [("name", "The Eagle"), ("stars", "4")]
    assert parse_record("name: The Eagle\nfood: French") == [("name", "The Eagle"), ("food", "French")]
    assert parse_record("Is the Eagle [the pub] near the river?") is None
    assert parse_record("Note: bring cash") is None  # one colon in prose is not a record


def test_record_prompts_get_the_delex_neighbour_and_prose_does_not():
    rows = _rows()[:200]
    shape, chosen = A.choose("generation", [r["mr"] for r in rows], [r["text"] for r in rows])
    assert shape == "records"
    assert [a.name for a in chosen] == ["nearest_neighbour", "delex_neighbour"]
    prose = [f"Tell me about {r['mr'].split(']')[0].split('[')[1]}, please." for r in rows]
    assert A.choose("generation", prose, [r["text"] for r in rows])[0] == "text"


def test_delexicalise_slots_verbatim_values_and_keeps_the_rest_written():
    record = parse_record("name[The Eagle], customer rating[1 out of 5], familyFriendly[yes]")
    tpl = delexicalise(record, "The Eagle is rated 1 out of 5 and is kid friendly.")
    assert tpl.written == frozenset({("familyFriendly", "yes")})  # "kid friendly" is not the value "yes"
    other = parse_record("name[Aromi], customer rating[5 out of 5], familyFriendly[yes]")
    assert fill(other, tpl) == "Aromi is rated 5 out of 5 and is kid friendly."


def test_a_neighbour_whose_written_value_is_wrong_loses_to_one_that_matches():
    # Two real E2E-style templates with the same fields: only familyFriendly, written in words, differs.
    fit_prompts = ["name[Aromi], area[riverside], familyFriendly[no]", "name[Cocum], area[riverside], familyFriendly[yes]"]
    fit_answers = ["Aromi is in riverside and is not family friendly.", "Cocum is in riverside and welcomes families."]
    data = A.FitData("generation", fit_prompts, fit_answers, [], [], ["name[The Mill], area[city centre], familyFriendly[yes]"])
    predictions, _ = DELEX_NEIGHBOUR.fit(data)
    assert predictions == ["The Mill is in city centre and welcomes families."]


def test_delex_answers_name_this_record_never_the_neighbours_restaurant():
    rows = _rows()
    data = _data(rows)
    fitted = A.fit_one(DELEX_NEIGHBOUR, data)
    assert fitted.error is None and len(fitted.predictions) == TEST
    names = {v for r in rows[:FIT] for k, v in parse_record(r["mr"]) or [] if k in ("name", "near")}
    named = 0
    for prompt, answer in zip(data.test_prompts, fitted.predictions):
        record = dict(parse_record(prompt) or [])
        if "name" not in record:  # the cleaned data has a few records without a name
            continue
        named += 1
        assert record["name"] in answer, (prompt, answer)
        wrong = [n for n in names - {record["name"], record.get("near")} if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", answer)]
        assert not wrong, (prompt, answer, wrong)
    assert named > TEST // 2


def test_the_e2e_example_config_loads_and_its_rows_are_records_with_text():
    config = load_config(EXAMPLE / "tunerail.yaml")
    assert config.task == "generation" and config.criteria.metric == "rougeL"
    records, rejected, _ = load_records(config.resolve(config.data.path), config.data.format, config.data.columns)
    assert not rejected and len(records) == 1000
    assert len({r.prompt for r in records}) == 1000  # one reference per record: independent test rows
    assert all(parse_record(r.prompt) and r.completion.strip() for r in records)
    assert (EXAMPLE / "restaurants.jsonl").stat().st_size < 1_000_000


def test_consensus_rouge_matches_rouge_score_and_skips_the_odd_wording():
    from rouge_score import rouge_scorer
    from rouge_score.tokenizers import DefaultTokenizer

    from tunerail.eval.alternatives.delex import _consensus, _lcs_f

    tokenize = DefaultTokenizer(use_stemmer=True).tokenize
    texts = [r["text"] for r in _rows()[:12]]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for a, b in zip(texts, texts[1:]):
        assert abs(_lcs_f(tokenize(a), tokenize(b)) - scorer.score(a, b)["rougeL"].fmeasure) < 1e-9
    wordings = [
        "slotname0 is a pub near slotnear0.",
        "Near slotnear0 you will find a pub, slotname0.",
        "slotname0 is a pub near slotnear0 .",
    ]
    assert _consensus([tokenize(w) for w in [wordings[1], wordings[0], wordings[2]]]) in (1, 2)
