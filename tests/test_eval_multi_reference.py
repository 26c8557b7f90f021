"""Multi-reference test sets (several human answers per prompt, one row each): each distinct prompt is generated once."""

from __future__ import annotations

from eval_fixtures import cached_tiny_pair

from tunerail.config import EvalConfig
from tunerail.eval import generate as G
from tunerail.eval.inference import Runner


def test_runner_generates_each_distinct_prompt_once_and_answers_every_row(monkeypatch):
    model, _ = cached_tiny_pair()
    lm = G.load_model(str(model))
    prompts = ["catch, dog, frisbee", "catch, dog, frisbee", "fold, paper, table", "catch, dog, frisbee", "fold, paper, table"]
    refs = ["A dog catches the frisbee.", "The dog jumps to catch a frisbee.", "He folds the paper.", "x", "y"]
    seen: list[list[str]] = []
    real = G.generate_candidates

    def counting(lm_, batch, **kw):
        seen.append(list(batch))
        return real(lm_, batch, **kw)

    monkeypatch.setattr(G, "generate_candidates", counting)
    out = Runner(None, prompts, refs, [], EvalConfig(cache=False), 6, None, {}).outputs("base", lm, perplexity=False)
    assert sorted(p for batch in seen for p in batch) == ["catch, dog, frisbee", "fold, paper, table"]
    texts = out["text"]
    assert len(texts) == 5 and texts[0] == texts[1] == texts[3] and texts[2] == texts[4]
