"""The doctor on record-to-text data (issue 25 §3, the bundled E2E example): the task and answer shape decide.

Before: 693 of its 1,000 rows were reported as label conflicts (records that differ in a value, rightly
described differently) and 103 as cut off (complete descriptions written without a final full stop).
"""

from __future__ import annotations

import json
from pathlib import Path

from doctor_helpers import flagged, write_jsonl
from tunerail.config import TunerailConfig
from tunerail.doctor import doctor
from tunerail.doctor.checks.prompt_words import difference_echoed

E2E = Path(__file__).resolve().parent.parent / "examples" / "e2e" / "restaurants.jsonl"
CONFIG = {
    "task": "generation",
    "data": {"format": "prompt_completion", "columns": {"prompt": "mr", "completion": "text"}},
    "doctor": {"disabled_checks": ["lengths.truncated"]},
}


def e2e_rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in E2E.read_text(encoding="utf-8").splitlines()]


def audit(tmp_path: Path, rows: list[dict[str, str]]):
    return doctor(write_jsonl(tmp_path / "e2e.jsonl", rows), TunerailConfig.model_validate(CONFIG), semantic=False)


def test_different_records_are_not_label_conflicts_but_one_record_described_twice_is(tmp_path):
    rows = e2e_rows()
    rows.append({**rows[0], "text": "The Cricketers is a pub by the river that serves sushi."})  # row 1000: the same record again
    assert flagged(audit(tmp_path, rows), "labels.conflict") == {0, 1000}


def test_a_reworded_prompt_with_a_different_answer_stays_a_conflict_and_a_different_post_does_not():
    post_a = ("Justin Bieber is playing in Paris tonight, so excited", '{"person": ["Justin Bieber"], "location": ["Paris"]}')
    post_b = ("Taylor Swift is playing in Paris tonight, so excited", '{"person": ["Taylor Swift"], "location": ["Paris"]}')
    assert difference_echoed(post_a, post_b)
    assert not difference_echoed(("What is the capital city of Australia?", "Canberra."), ("What's the capital of Australia?", "Sydney."))


def test_descriptions_that_state_every_value_need_no_final_stop_and_cut_ones_are_found(tmp_path):
    rows = e2e_rows()
    unpunctuated = [i for i, r in enumerate(rows) if r["text"].rstrip()[-1:].isalnum()]
    assert len(unpunctuated) >= 90  # the example's real shape: one description in ten has no final stop
    # cut before its last values: "... is not kid" / "... a customer rating of 1 out of 5" (family-friendly and "near" unstated)
    rows[0]["text"] = "The Cricketers restaurant has Chinese food in the moderate price range with a customer rating of 1 out of 5"
    rows[1]["text"] = "The Eagle is a Chinese coffee shop  located riverside near Burger King.  It is a child friendly restaurant that"
    cuts = flagged(audit(tmp_path, rows), "lengths.cut_off")
    assert {0, 1} <= cuts
    assert len(cuts - {0, 1}) <= 0.05 * len(rows)


def test_different_records_are_not_near_duplicates_but_a_copy_of_one_is(tmp_path):
    """Before: 103 E2E rows in 47 near-duplicate clusters, records of one restaurant that differ in a value."""
    rows = e2e_rows()
    rows.append({**rows[0], "text": rows[0]["text"].replace("is near", "sits near")})  # row 1000: the same record, an edited copy
    assert flagged(audit(tmp_path, rows), "duplicates.near") == {0, 1000}
