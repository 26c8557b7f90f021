"""Score one already-loaded model on the frozen test rows exactly as `tunerail eval` scores the tuned model.

Used where a model must be judged again after it left eval's hands (an export loaded back the way a
user serves it): same prompt template, same decoding (label-constrained for classification, span copy
for span extraction, keyword cover for keywords-to-text with beams, unless ``eval.decoding: free``; the span shape read from these rows), same ``max_new_tokens``, same task metric, same output cache. Two models
rescored here on the same rows are comparable row by row (:func:`paired_difference`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tunerail import stats as S
from tunerail import tasks as T
from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.inference import Runner, cover_keywords, keyword_guides, max_new_tokens, span_sources, verdict_decoding
from tunerail.scoring import ModelScores
from tunerail.prompting import pick_template, prompt_for


@dataclass
class Rescored:
    """One model's answers and scores on the test rows."""

    name: str
    outputs: list[str]
    scores: ModelScores
    cached: bool
    seconds: float
    groups: list[str] | None = None  # each row's input: rows sharing one are drawn together for the CIs

    def estimate(self, metric: str, resamples: int) -> dict[str, Any]:
        """The main metric with its 95 % CI (Wilson for 0/1 scores, bootstrap otherwise), as eval reports it."""
        n = len(self.outputs)
        if metric in self.scores.per_example:
            return S.mean_ci(self.scores.per_example[metric], resamples=resamples, groups=self.groups).to_dict()
        return S.bootstrap_statistic(self.scores.corpus[metric], n, resamples=resamples, groups=self.groups).to_dict()


def rescore(
    config: Any, lm: G.LoadedModel, records: Sequence[Record], *, labels: Sequence[str] = (), cache: Path | None = None, name: str = "model"
) -> Rescored:
    """Generate for every record with the run's prompt and decoding, and score with the task metric."""
    import time

    t = time.perf_counter()
    task = config.task
    template = pick_template(config)
    prompts = [prompt_for(lm.tokenizer, r, template) for r in records]
    refs = [r.completion for r in records]
    labels = sorted(labels)
    max_new = max_new_tokens(config, task, lm.tokenizer, labels)
    timings: dict[str, float] = {}
    runner = Runner(cache, prompts, refs, list(labels), config.eval, max_new, None, timings)
    sources = span_sources(task, None, records)
    keywords = keyword_guides(task, records, config.eval)
    decoding = verdict_decoding(labels, sources, config.eval.decoding, keywords is not None)
    if decoding == "label_trie":
        out: dict[str, Any] = {"text": runner.constrained(name, lm), "cached": False}
    elif decoding == "span_copy":
        out = {"text": runner.span_copy(name, lm, sources or []), "cached": False}
    elif decoding == "keyword_cover":
        out = cover_keywords(runner.outputs(name, lm, perplexity=False), keywords or [])
    else:
        out = runner.outputs(name, lm, perplexity=False)
    scores = T.score_output(task, refs, out, list(labels))
    groups = [r.prompt for r in records]
    return Rescored(name, list(out["text"]), scores, bool(out.get("cached")), time.perf_counter() - t, groups)


def paired_difference(candidate: Rescored, reference: Rescored, metric: str, resamples: int) -> dict[str, Any]:
    """``candidate - reference`` on the main metric, paired over the same rows, with its 95 % bootstrap CI."""
    n = len(reference.outputs)
    S.check_same_length(candidate.outputs, reference.outputs)
    if metric in candidate.scores.per_example:
        est = S.paired_bootstrap(
            candidate.scores.per_example[metric].tolist(),
            reference.scores.per_example[metric].tolist(),
            resamples=resamples,
            groups=reference.groups,
        )
    else:
        est = S.paired_statistic(
            candidate.scores.corpus[metric], reference.scores.corpus[metric], n, resamples=resamples, groups=reference.groups
        )
    return est.to_dict()
