"""Span-copy decoding for extraction: values are copied from the prompt, reported beside free decoding.

A tiny random Llama with the SmolLM2 tokenizer gets a planted preference (a bigram table added to
its logits by a forward hook) for an answer whose value is NOT in the prompt: free decoding writes
it, span copy may not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402

from tunerail.config import TunerailConfig  # noqa: E402
from tunerail.eval.span_copy import JsonCursor, SpanIndex, build_vocab, escaped  # noqa: E402

WNUT = Path(__file__).resolve().parent.parent / "examples" / "wnut17" / "posts.jsonl"


@pytest.fixture(scope="module")
def tiny():
    return cached_tiny_pair()


@pytest.fixture(scope="module")
def tok():
    from tunerail.models import load_tokenizer

    return load_tokenizer("bundled:smollm2")


def values(text: str) -> list[bytes]:
    """Every string value (complete or cut off) the cursor sees in ``text``, keys left out."""
    cur, out = JsonCursor(), []
    for c in text.encode():
        was = cur.in_value
        cur.feed(bytes((c,)))
        if was and not cur.in_str:
            out.append(cur.content)
    return out + ([cur.content] if cur.in_value else [])


def test_cursor_tells_values_from_keys_and_keeps_escapes():
    text = '{"person": ["Ann", "Bo \\"B\\""], "n": 3, "loc": "Oslo", "x": {"k": "v"}, "cut": "Ber'
    assert values(text) == [b"Ann", b'Bo \\"B\\"', b"Oslo", b"v", b"Ber"]


def test_cursor_refuses_a_value_that_leaves_the_prompt(tok):
    span = SpanIndex('He said "go" to Bo in Zürich at 5pm', build_vocab(tok))
    assert JsonCursor().feed(b'{"quote": "said \\"go\\"", "city": "Z\\u00fcrich"}', span)  # both JSON conventions
    assert JsonCursor().feed('{"city": ["Zürich"], "n": 5, "ok": true, "x": null}'.encode(), span)
    assert not JsonCursor().feed(b'{"quote": "said \\"stop', span)
    assert not JsonCursor().feed(b'{"person": "bo"}', span)  # case as written in the prompt
    assert JsonCursor().feed(b'{"He said": "Bo"}', span)  # keys are free
    assert not JsonCursor().feed('{"person": "Zür"}'.encode(), span) and JsonCursor().feed(
        '{"person": "Zür'.encode(), span
    )  # ends at a word end
    assert not JsonCursor().feed('{"person": "ürich'.encode(), span)  # and starts at a word start
    assert not JsonCursor().feed(b'{"person": ["Bo"" Zurich ""]}', span)  # no text outside a string


def test_index_continues_a_value_only_with_prompt_tokens(tok):
    vocab = build_vocab(tok)
    idx = SpanIndex("Tomorrow a stop in Glenveagh national park , then Obama", vocab)
    ids = set(idx.continuations(b"Glenveagh"))
    national, park, ama = (tok.convert_tokens_to_ids(t) for t in ("Ġnational", "Ġpark", "ama"))
    assert national in ids and park not in ids and ama not in ids
    assert ama in set(idx.continuations(b"Ob")) and tok.convert_tokens_to_ids("Ob") in idx.anywhere
    assert len(idx.anywhere) < 500  # the prompt's tokens, not the 49k vocabulary


def _planted(lm, tok, prompt: str, answers: dict[str, float]):
    """Add a bigram preference for each answer (after the prompt's last token, with its weight) to the model's logits."""
    start = tok(prompt, add_special_tokens=False)["input_ids"][-1]
    table: dict[int, dict[int, float]] = {}
    for answer, weight in answers.items():
        chain = [start, *tok(answer, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        assert len(set(chain[:-1])) == len(chain) - 1, "a planted answer needs distinct tokens"
        for prev, nxt in zip(chain[:-1], chain[1:]):
            table.setdefault(prev, {})[nxt] = max(weight, table.get(prev, {}).get(nxt, 0.0))

    def hook(_module, _args, kwargs, output):
        for row, t in enumerate(kwargs["input_ids"][:, -1].tolist()):
            for nxt, weight in table.get(t, {}).items():
                output.logits[row, -1, nxt] += weight
        return output

    return lm.model.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("post", ["Trump met Macron in Paris", 'Trump said "hi" to Macron in Zürich'])
def test_span_copy_never_writes_a_value_outside_the_prompt(tiny, tok, post):
    """The model prefers "Obama" (not in the post), then "Macron": span copy writes Macron, free Obama."""
    from tunerail.eval import generate as G
    from tunerail.prompting import prompt_for

    model, _ = tiny
    lm = G.load_model(str(model))
    first, second = '{"person": ["Obama"]}', '{"person": ["Macron"]}'
    posts = [post, "Obama met Macron in Paris"]
    prompts = [prompt_for(lm.tokenizer, p) for p in posts]
    handle = _planted(lm, lm.tokenizer, prompts[0], {first: 1000.0, second: 500.0})
    try:
        free = G.generate(lm, prompts, max_new_tokens=12, batch_size=2)
        copied = G.generate_span_copy(lm, prompts, posts, max_new_tokens=12, batch_size=2)
    finally:
        handle.remove()
    assert free == [first, first]  # the planted model prefers a value the first post does not contain
    assert copied == [second, first]  # the best value in the post; a value in the post is left as written
    for text, p in zip(copied, posts):
        assert all(v in escaped(p) for v in values(text))


def _rows(n: int, spans: bool = True) -> list[dict]:
    rows = [json.loads(x) for x in WNUT.read_text(encoding="utf-8").splitlines()[:n]]
    if not spans:  # values that are no spans of the post: a normalised count
        rows = [{**r, "entities": json.dumps({"words": "many" if len(r["text"].split()) > 12 else "few"})} for r in rows]
    return rows


def _config(**ev) -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": "extraction",
            "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}},
            "prompts": [{"version": "v1", "system": "Extract people and locations as JSON."}],
            "criteria": {"metric": "field_f1", "threshold": 0.4, "margin": 0.5},
            "eval": {"forgetting": False, "bootstrap": 200, "max_new_tokens": 8, "perplexity": False, **ev},
        }
    )


def test_span_extraction_reports_span_copy_beside_free(tiny, tmp_path):
    import tunerail

    model, adapter = tiny
    res = tunerail.evaluate(
        _config(),
        test_data=write_jsonl(tmp_path / "test.jsonl", _rows(8)),
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        cache_dir=None,
    )
    assert res.prompt["verdict_decoding"] == "span_copy" and res.prompt["decoding"] == "both"
    assert {"tuned", "tuned_free"} <= set(res.metrics) and {"low", "high"} <= set(res.metrics["tuned_free"]["field_f1"])
    free = next(b for b in res.baselines if b["name"] == "tuned_free")
    assert free["kind"] == "tuned" and free["gain"] is None and {"value", "low", "high"} <= set(free["difference"])
    assert res.reference != "tuned_free" and "tuned_span_copy_s" in res.timings
    html = Path(res.report_html).read_text(encoding="utf-8")
    assert "span-copy decoding" in html and "(span-copy − free)" in html


def test_span_copy_can_be_switched_off_and_skips_non_span_extraction(tiny, tmp_path):
    import tunerail

    model, adapter = tiny
    common = dict(adapter_dir=adapter, base_model=str(model), cache_dir=None)
    off = tunerail.evaluate(
        _config(decoding="free"), test_data=write_jsonl(tmp_path / "a.jsonl", _rows(8)), out_dir=tmp_path / "off", **common
    )
    fields = tunerail.evaluate(
        _config(), test_data=write_jsonl(tmp_path / "b.jsonl", _rows(8, spans=False)), out_dir=tmp_path / "fields", **common
    )
    for res in (off, fields):
        assert res.prompt["verdict_decoding"] == "free" and res.prompt["decoding"] == "free"
        assert "tuned_free" not in res.metrics and "tuned_span_copy_s" not in res.timings


def test_rescore_decodes_like_the_verdict(tiny, tmp_path):
    """An export is re-scored with the verdict's decoding: span copy on span extraction, free when switched off."""
    from tunerail.eval import generate as G
    from tunerail.eval.inputs import load_rows
    from tunerail.eval.rescore import rescore
    from tunerail.prompting import pick_template, prompt_for

    model, _ = tiny
    lm = G.load_model(str(model))
    posts = ["Trump met Macron in Paris", "Macron and Trump in Paris"]
    rows = [{"text": p, "entities": '{"person": ["Trump", "Macron"]}'} for p in posts]
    records, _ = load_rows(_config(), write_jsonl(tmp_path / "test.jsonl", rows))
    first, second = '{"person": ["Obama"]}', '{"person": ["Macron"]}'
    handle = _planted(lm, lm.tokenizer, prompt_for(lm.tokenizer, records[0], pick_template(_config())), {first: 1000.0, second: 500.0})
    try:
        copied = rescore(_config(max_new_tokens=12), lm, records)
        free = rescore(_config(max_new_tokens=12, decoding="free"), lm, records)
    finally:
        handle.remove()
    assert copied.outputs == [second, second] and free.outputs == [first, first]
    assert copied.estimate("field_f1", 200)["value"] > free.estimate("field_f1", 200)["value"]
