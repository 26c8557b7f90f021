"""Keywords-to-text prompts: the one word-form rule, beam candidates, and the eval's keyword-cover decoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_fixtures import cached_tiny_pair

from tunerail.config import EvalConfig
from tunerail.data.records import Record, RowRef
from tunerail.eval import generate as G
from tunerail.eval.compare import llm_labels
from tunerail.eval.prefill import prefilled_cache
from tunerail.eval.inference import Runner, base_outputs, keyword_guides, tuned_outputs
from tunerail.keywords import keyword_coverage, keyword_prompt, keyword_prompts, most_covering, uses_every_keyword

COMMONGEN = Path(__file__).parents[1] / "examples" / "commongen" / "concepts.jsonl"


def test_word_forms_count_inflections_and_irregular_past():
    assert keyword_coverage(["sit", "throw", "fold"], "She sat down and threw the folded towel.") == 1.0
    assert keyword_coverage(["sit", "throw", "fold", "table"], "She sat down.") == 0.25
    assert not uses_every_keyword(["dog", "frisbee"], "A dog runs.")
    assert keyword_prompt("fold, paper, sit, table") == ["fold", "paper", "sit", "table"]
    assert keyword_prompt("Write a sentence about a dog.") is None


def test_people_use_every_concept_in_the_bundled_commongen_sentences():
    """CommonGen's writers were asked to use every concept: the rule must see that in nearly all their sentences."""
    rows = [json.loads(line) for line in COMMONGEN.read_text().splitlines()]
    covered = [uses_every_keyword(keyword_prompt(r["concepts"]) or [], r["sentence"]) for r in rows]
    assert keyword_prompts([r["concepts"] for r in rows]) is not None
    assert sum(covered) / len(covered) >= 0.95


def test_most_covering_prefers_coverage_then_the_likelier_candidate():
    keywords = ["dog", "catch", "frisbee"]
    assert most_covering(["A dog runs.", "The dog caught a frisbee.", "Dogs catch frisbees."], keywords) == "The dog caught a frisbee."
    assert most_covering(["A dog runs.", "A dog sits."], keywords) == "A dog runs."
    assert most_covering([], keywords) == ""


def test_beam_search_returns_every_beam_and_is_cached_apart_from_greedy(tmp_path):
    model, _ = cached_tiny_pair()
    lm = G.load_model(str(model))
    found = G.generate_candidates(lm, ["dog, frisbee", "paper, table"], max_new_tokens=5, num_beams=3)
    assert [len(c) for c in found] == [3, 3]
    greedy = Runner(tmp_path, ["dog, frisbee"], ["x"], [], EvalConfig(), 5, None, {}).outputs("base", lm, perplexity=False)
    beams = Runner(tmp_path, ["dog, frisbee"], ["x"], [], EvalConfig(num_beams=3), 5, None, {}).outputs("base", lm, perplexity=False)
    assert len(greedy["candidates"][0]) == 1 and len(beams["candidates"][0]) == 3 and not beams["cached"]


def _records(prompts: list[str]) -> list[Record]:
    return [Record(ref=RowRef(i, i + 1), format="prompt_completion", turns=[], prompt=p, completion="") for i, p in enumerate(prompts)]


@pytest.fixture
def fake_beams(monkeypatch):
    """Candidates where the likeliest beam drops a keyword and a later one uses them all."""

    def candidates(lm, prompts, **kw):
        return [["A dog runs on the grass.", "A dog catches a frisbee."] for _ in prompts]

    monkeypatch.setattr(G, "generate_candidates", candidates)


def test_keyword_cover_answers_every_llm_row_and_reports_the_likeliest_beam_beside(fake_beams):
    prompts = ["dog, catch, frisbee", "dog, catch, frisbee"]
    ev = EvalConfig(num_beams=2, cache=False)
    keywords = keyword_guides("generation", _records(prompts), ev)
    assert keywords == [["dog", "catch", "frisbee"]] * 2
    run = Runner(None, prompts, ["r", "r"], [], ev, 8, None, {})
    lm = G.LoadedModel(model=None, tokenizer=None, name="fake", fingerprint="f")
    outs = base_outputs(run, run, lm, [], False, keywords)
    decoding = tuned_outputs(run, outs, lm, ev, True, False, None, keywords)
    assert decoding == "keyword_cover"
    assert outs["tuned"]["text"] == outs["base_few_shot"]["text"] == outs["base"]["text"] == ["A dog catches a frisbee."] * 2
    assert outs["tuned_free"]["text"] == ["A dog runs on the grass."] * 2


def test_keyword_cover_needs_beams_keyword_prompts_and_a_constrained_setting():
    keywords = _records(["dog, catch, frisbee"] * 10)
    assert keyword_guides("generation", keywords, EvalConfig(num_beams=1)) is None
    assert keyword_guides("generation", keywords, EvalConfig(num_beams=4, decoding="free")) is None
    assert keyword_guides("extraction", keywords, EvalConfig(num_beams=4)) is None
    assert keyword_guides("generation", _records(["Summarise this dialogue: ..."] * 10), EvalConfig(num_beams=4)) is None


def test_table_names_say_how_the_llm_rows_were_decoded():
    assert llm_labels(3)["base_few_shot"] == "base model, 3-shot free generation"
    assert llm_labels(3, 4, "keyword_cover")["base_few_shot"] == "base model, 3-shot 4-beam search, the beam using the most keywords"
    assert llm_labels(0, 4)["tuned_free"] == "fine-tuned model, 4-beam search, the likeliest beam"


def test_an_export_is_rescored_with_keyword_cover_like_the_verdict(fake_beams):
    """An exported model is judged the way the verdict judged the tuned one: the beam using the most keywords."""
    from tunerail.config import TunerailConfig
    from tunerail.eval.rescore import rescore

    def config(**ev: object) -> TunerailConfig:
        return TunerailConfig.model_validate(
            {
                "task": "generation",
                "data": {"format": "prompt_completion"},
                "criteria": {"metric": "rougeL", "threshold": 0.4, "margin": 0.5},
                "eval": {"forgetting": False, "bootstrap": 200, "max_new_tokens": 8, "perplexity": False, "cache": False, **ev},
            }
        )

    model, _ = cached_tiny_pair()
    lm = G.load_model(str(model))
    records = _records(["dog, catch, frisbee", "catch, dog, frisbee"])
    for r in records:
        r.completion = "The dog leaps to catch a frisbee."
    covered = rescore(config(num_beams=2), lm, records)
    free = rescore(config(num_beams=2, decoding="free"), lm, records)
    assert covered.outputs == ["A dog catches a frisbee."] * 2 and free.outputs == ["A dog runs on the grass."] * 2


def test_beams_from_a_prompt_cache_read_once_match_plain_beam_search():
    """The prompt's KV cache is computed once and repeated per beam: the answers must be generate(num_beams)'s own."""
    import torch

    model, _ = cached_tiny_pair()
    lm = G.load_model(str(model))
    tok = lm.tokenizer
    prompts = ["dog, frisbee", "a much longer prompt about paper, tables and folding things", "sit"]
    ours = G.generate_candidates(lm, prompts, max_new_tokens=6, num_beams=3)
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        plain = lm.model.generate(
            **enc,
            max_new_tokens=6,
            num_beams=3,
            num_return_sequences=3,
            early_stopping=True,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    width = enc["input_ids"].shape[1]
    texts = [tok.decode(row[width:], skip_special_tokens=True).strip() for row in plain]
    assert ours == [texts[i : i + 3] for i in range(0, 9, 3)]


def test_the_prompt_cache_gives_the_next_token_logits_of_a_full_forward_on_left_padded_rows():
    """Each beam's copy of the cache must be its own prompt's (repeated row by row, as generate repeats the prompts)."""
    import torch

    model, _ = cached_tiny_pair()
    lm = G.load_model(str(model))
    enc = lm.tokenizer(["sit", "a much longer prompt about paper, tables and folding"], return_tensors="pt", padding=True)
    mask = enc["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        full = lm.model(**enc, position_ids=positions).logits[:, -1]
        cache = prefilled_cache(lm.model, enc, 2)
        last = lm.model(
            input_ids=enc["input_ids"][:, -1:].repeat_interleave(2, 0),
            attention_mask=mask.repeat_interleave(2, 0),
            position_ids=positions[:, -1:].repeat_interleave(2, 0),
            past_key_values=cache,
        ).logits[:, -1]
    assert torch.allclose(last, full.repeat_interleave(2, 0), atol=1e-4)
