"""The doctor on multi-reference, keywords-to-text data (the bundled CommonGen example): the shape decides.

Before: 487 label-conflict warnings (a concept set's several human sentences, which is how CommonGen is
built) and 185 cut-off warnings (complete sentences written without a final full stop) on 1,902 rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from doctor_helpers import flagged, write_jsonl
from tunerail.config import TunerailConfig
from tunerail.doctor import doctor
from tunerail.keywords import keyword_prompt, uses_every_keyword

COMMONGEN = Path(__file__).resolve().parent.parent / "examples" / "commongen" / "concepts.jsonl"
CONFIG = {
    "task": "generation",
    "data": {"format": "prompt_completion", "columns": {"prompt": "concepts", "completion": "sentence"}},
    "doctor": {"disabled_checks": ["lengths.truncated"]},
}


def rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in COMMONGEN.read_text(encoding="utf-8").splitlines()]


def audit(tmp_path: Path, data: list[dict[str, str]], task: str = "generation"):
    return doctor(write_jsonl(tmp_path / "data.jsonl", data), TunerailConfig.model_validate({**CONFIG, "task": task}), semantic=False)


def test_several_sentences_per_concept_set_are_one_multi_reference_finding_not_conflicts(tmp_path):
    findings = [f for f in audit(tmp_path, rows()).findings if f.check == "labels.conflict"]
    assert len(findings) == 1 and findings[0].severity.value == "info"
    assert findings[0].details["prompts"] >= 400 and "multi-reference" in findings[0].message


def test_a_few_repeated_prompts_with_different_answers_stay_conflicts(tmp_path):
    data = [{"concepts": f"prompt number {i}", "sentence": f"answer {i}."} for i in range(200)]
    data += [{"concepts": "prompt number 3", "sentence": "a different answer."}, {"concepts": "prompt number 7", "sentence": "another."}]
    assert flagged(audit(tmp_path, data), "labels.conflict") == {3, 7, 200, 201}


def test_a_sentence_that_uses_every_concept_needs_no_final_stop_and_a_cut_one_is_found(tmp_path):
    data = rows()
    sentence = "A father stands beside the road and teaches his young son how to ride a bike without help"
    data.append({"concepts": "bike, ride, son, teach", "sentence": sentence, "set_id": "x"})  # complete, no stop
    data.append(
        {"concepts": "bike, ride, son, teach, road", "sentence": "A father stands beside his young son and teaches him to", "set_id": "y"}
    )
    cut = flagged(audit(tmp_path, data), "lengths.cut_off")
    assert len(data) - 2 not in cut and len(data) - 1 in cut
    assert len(cut) <= 0.01 * len(data)  # 185 of 1,902 rows before


def test_keyword_prompts_and_word_forms():
    assert keyword_prompt("coat, sidewalk, walk, wear") == ["coat", "sidewalk", "walk", "wear"]
    assert keyword_prompt("The cat, which sat on the mat, was happy") is None
    assert uses_every_keyword(["broom", "floor", "hold", "sweep"], "She held the broom as she swept the floor")
    assert uses_every_keyword(["bike", "ride", "sit"], "He sat on his bike before riding home")
    assert not uses_every_keyword(["bike", "ride", "road"], "He sat on his bike before riding")
