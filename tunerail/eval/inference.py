"""Eval stages 3b-4: the LLM answers (base zero-shot and k-shot, tuned constrained and free), cached.

The tuned model's constrained decoding depends on the task (``eval.decoding``): a label trie for
classification, span copy (``span_copy.py``) for extraction whose values are spans of the prompt,
keyword cover for keywords-to-text generation with beams (of each prompt's beam candidates, the one
using the most keywords; every LLM row alike, so the base model is scored the strongest fair way);
any other task decodes freely (greedy, or beam search with ``eval.num_beams``).

Every model output goes through :class:`Runner`, so a re-run with the same model, prompts and
decoding settings reads its answers back from the cache instead of generating again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from tunerail.config import EvalConfig, TunerailConfig
from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.alternatives.shape import values_are_spans
from tunerail.eval.span_copy import VERSION as SPAN_COPY_VERSION
from tunerail.keywords import keyword_prompts, most_covering

ProgressFn = Callable[[str, int, int], None]
Decoding = Literal["label_trie", "span_copy", "keyword_cover", "free"]  # what the verdict's tuned answers were decoded with


class Runner:
    """Generate (and optionally rank) for one prompt set, through the on-disk cache."""

    def __init__(
        self,
        cache: Path | None,
        prompts: list[str],
        refs: list[str],
        labels: list[str],
        ev: EvalConfig,
        max_new: int,
        progress: ProgressFn | None,
        timings: dict[str, float],
    ):
        self.cache, self.prompts, self.refs, self.labels, self.ev = cache, prompts, refs, labels, ev
        self.max_new, self.progress, self.timings = max_new, progress, timings
        self.data = G.data_hash(prompts)

    def outputs(self, name: str, lm: G.LoadedModel, perplexity: bool = True) -> dict[str, Any]:
        """Free generation (+ label ranking when ``eval.label_ranking``) and reference perplexity.

        With ``eval.num_beams`` > 1, ``text`` is each prompt's likeliest beam and ``candidates`` all of them.
        """
        t = time.perf_counter()
        beams = self.ev.num_beams
        key = G.cache_key("gen", lm.fingerprint, self.data, self.max_new) + (f"-beams{beams}" if beams > 1 else "")
        gen, hit = G.cached(
            self.cache,
            key,
            lambda: self._generate_distinct(lm) if beams > 1 else [c[0] for c in self._generate_distinct(lm)],  # greedy: one text per row
            inputs={"stage": "gen", "model": lm.fingerprint, "prompts": self.data, "max_new_tokens": self.max_new}
            | ({"num_beams": beams} if beams > 1 else {}),
        )
        self.timings[f"{name}_generate_s"] = time.perf_counter() - t
        candidates = gen if beams > 1 else [[text] for text in gen]
        out: dict[str, Any] = {"text": [c[0] for c in candidates], "candidates": candidates, "cached": hit}
        if self.labels and self.ev.label_ranking:
            out["ranked"] = self.ranked(name, lm)
        if perplexity:
            out.update(self.perplexity(name, lm))
        return out

    def _generate_distinct(self, lm: G.LoadedModel) -> list[list[str]]:
        """Each prompt's candidates (one when greedy), each distinct prompt generated once: multi-reference test sets
        repeat a prompt per reference."""
        distinct = list(dict.fromkeys(self.prompts))
        found = G.generate_candidates(
            lm, distinct, max_new_tokens=self.max_new, batch_size=self.ev.batch_size, num_beams=self.ev.num_beams, progress=self.progress
        )
        answer = dict(zip(distinct, found))
        return [answer[p] for p in self.prompts]

    def ranked(self, name: str, lm: G.LoadedModel) -> list[str]:
        """The label with the highest log-likelihood per prompt (never outside the label set)."""
        t = time.perf_counter()
        ranked, _ = G.cached(
            self.cache,
            G.cache_key("rank", lm.fingerprint, self.data, self.labels, self.ev.length_normalize),
            lambda: G.rank_labels(
                lm,
                self.prompts,
                self.labels,
                batch_size=self.ev.batch_size,
                length_normalize=self.ev.length_normalize,
                progress=self.progress,
            ),
            inputs={"stage": "rank", "model": lm.fingerprint, "prompts": self.data, "labels": G.data_hash(self.labels)},
        )
        self.timings[f"{name}_rank_s"] = self.timings.get(f"{name}_rank_s", 0.0) + time.perf_counter() - t
        return ranked

    def constrained(self, name: str, lm: G.LoadedModel) -> list[str]:
        """Greedy decoding restricted to the labels' token sequences."""
        t = time.perf_counter()
        text, _ = G.cached(
            self.cache,
            G.cache_key("constrained", lm.fingerprint, self.data, self.labels),
            lambda: G.generate_constrained(lm, self.prompts, self.labels, batch_size=self.ev.batch_size, progress=self.progress),
            inputs={"stage": "constrained", "model": lm.fingerprint, "prompts": self.data, "labels": G.data_hash(self.labels)},
        )
        self.timings[f"{name}_constrained_s"] = time.perf_counter() - t
        return text

    def span_copy(self, name: str, lm: G.LoadedModel, sources: list[str]) -> list[str]:
        """Greedy decoding whose JSON string values are copied from ``sources`` (the records' prompts)."""
        t = time.perf_counter()
        text, _ = G.cached(
            self.cache,
            G.cache_key("span_copy", SPAN_COPY_VERSION, lm.fingerprint, self.data, G.data_hash(sources), self.max_new),
            lambda: G.generate_span_copy(
                lm, self.prompts, sources, max_new_tokens=self.max_new, batch_size=self.ev.batch_size, progress=self.progress
            ),
            inputs={"stage": "span_copy", "model": lm.fingerprint, "prompts": self.data, "sources": G.data_hash(sources)},
        )
        self.timings[f"{name}_span_copy_s"] = time.perf_counter() - t
        return text

    def perplexity(self, name: str, lm: G.LoadedModel) -> dict[str, Any]:
        t = time.perf_counter()
        ppl, _ = G.cached(
            self.cache,
            G.cache_key("ppl", lm.fingerprint, self.data, G.data_hash(self.refs)),
            lambda: list(
                G.score_answers(lm, self.prompts, self.refs, batch_size=self.ev.batch_size, progress=self.progress, stage="perplexity")
            ),
            inputs={"stage": "ppl", "model": lm.fingerprint, "prompts": self.data, "references": G.data_hash(self.refs)},
        )
        self.timings[f"{name}_perplexity_s"] = time.perf_counter() - t
        return {"ref_logp": np.asarray(ppl[0]), "ref_tokens": np.asarray(ppl[1])}


def ppl_of(out: dict[str, Any]) -> dict[str, Any]:
    return {k: out[k] for k in ("ref_logp", "ref_tokens") if k in out}


def max_new_tokens(config: TunerailConfig, task: str, tokenizer: Any, labels: Sequence[str]) -> int:
    """Classification needs only the longest label (+ end token and slack): 3-4x faster than 64."""
    if task == "classification" and labels:
        longest = max(len(tokenizer(lab, add_special_tokens=False)["input_ids"]) for lab in labels)
        return longest + 3
    return config.eval.max_new_tokens


@dataclass
class Inference:
    """The models' answers on the test prompts, keyed like the baseline table (``base``, ``tuned``...)."""

    base_lm: G.LoadedModel
    tuned_lm: G.LoadedModel
    outs: dict[str, dict[str, Any]]
    max_new: int
    decoding: Decoding  # how the verdict's tuned answers were decoded; with eval.decoding both, free ones beside

    @property
    def constrained(self) -> bool:
        """The tuned answers are label-constrained (classification's free-generation checks read the free row)."""
        return self.decoding == "label_trie"


def span_sources(task: str, shape: str | None, records: Sequence[Record]) -> list[str] | None:
    """The texts span-copy decoding copies from: the records' prompts when the task is span extraction, else None.

    ``shape`` is the alternatives stage's answer shape (read from the training rows); without a
    training split it is read from the test rows' references, as the label set is.
    """
    if task != "extraction":
        return None
    spans = shape == "spans" if shape is not None else values_are_spans([r.prompt for r in records], [r.completion for r in records])
    return [r.prompt for r in records] if spans else None


def keyword_guides(task: str, records: Sequence[Record], ev: EvalConfig) -> list[list[str]] | None:
    """Each record's keywords when the task is keywords-to-text generation decoded with beams to choose from, else None."""
    if task != "generation" or ev.num_beams < 2 or ev.decoding == "free":
        return None
    return keyword_prompts([r.prompt for r in records])


def cover_keywords(out: dict[str, Any], keywords: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``out`` answering with, per prompt, the beam candidate that uses the most of its keywords."""
    return {**out, "text": [most_covering(c, k) for c, k in zip(out["candidates"], keywords)]}


def verdict_decoding(labels: Sequence[str], sources: Sequence[str] | None, setting: str, keywords: bool = False) -> Decoding:
    """The decoding the verdict scores: the task's constrained one unless ``eval.decoding`` is free or none applies."""
    if setting == "free":
        return "free"
    return "label_trie" if labels else "span_copy" if sources is not None else "keyword_cover" if keywords else "free"


def base_outputs(
    run: Runner,
    few_run: Runner | None,
    base_lm: G.LoadedModel,
    labels: Sequence[str],
    want_ppl: bool,
    keywords: Sequence[Sequence[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The base model's rows: zero-shot free generation, label ranking (zero- and k-shot), or k-shot generation.

    With ``keywords`` (:func:`keyword_guides`) each generated row answers by keyword cover, as the tuned model does.
    """
    outs: dict[str, dict[str, Any]] = {"base": run.outputs("base", base_lm, perplexity=want_ppl)}
    if labels:
        outs["base_ranked"] = {"text": run.ranked("base", base_lm), **ppl_of(outs["base"])}
        if few_run is not None:
            outs["base_few_shot_ranked"] = {"text": few_run.ranked("base_few_shot", base_lm)}
    elif few_run is not None:
        outs["base_few_shot"] = few_run.outputs("base_few_shot", base_lm, perplexity=False)
    if keywords is not None:
        for name in ("base", "base_few_shot"):
            if name in outs:
                outs[name] = cover_keywords(outs[name], keywords)
    return outs


def tuned_outputs(
    run: Runner,
    outs: dict[str, dict[str, Any]],
    tuned_lm: G.LoadedModel,
    ev: EvalConfig,
    has_adapter: bool,
    want_ppl: bool,
    sources: list[str] | None = None,
    keywords: Sequence[Sequence[str]] | None = None,
) -> Decoding:
    """Add the tuned model's rows to ``outs``: ``tuned`` (what the verdict scores) and ``tuned_free``; returns the verdict's decoding.

    ``sources`` (from :func:`span_sources`) switches span-copy decoding on for span extraction, ``keywords``
    (from :func:`keyword_guides`) keyword cover for keywords-to-text generation.
    """
    decoding = verdict_decoding(run.labels, sources, ev.decoding, keywords is not None)
    free_out: dict[str, Any] | None
    if not has_adapter:
        free_out = outs["base"]  # keyword cover: base_outputs chose among its candidates already
    elif decoding in ("label_trie", "span_copy") and ev.decoding == "constrained":
        free_out = None
    else:
        free_out = run.outputs("tuned", tuned_lm, perplexity=want_ppl)
    if decoding == "keyword_cover" and free_out is not None:  # the same beams, chosen by keyword cover
        outs["tuned"] = cover_keywords(free_out, keywords or []) if has_adapter else free_out
        if has_adapter and ev.decoding == "both":
            outs["tuned_free"] = free_out
        return decoding
    if decoding == "free" and free_out is not None:  # free decoding: free_out is always set
        outs["tuned"] = free_out
        return decoding
    tuned_ppl = (ppl_of(free_out) if free_out is not None else run.perplexity("tuned", tuned_lm)) if want_ppl else {}
    text = run.constrained("tuned", tuned_lm) if decoding == "label_trie" else run.span_copy("tuned", tuned_lm, sources or [])
    outs["tuned"] = {"text": text, **tuned_ppl}
    if free_out is not None and "ranked" in free_out:
        outs["tuned"]["ranked"] = free_out["ranked"]
    if free_out is not None and has_adapter:
        outs["tuned_free"] = free_out
    return decoding
