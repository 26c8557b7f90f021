"""The registry: which alternatives a task gets, fitted once per data hash and never silently dropped.

| shape (see ``shape.py``) | alternatives, strongest first on the bundled demos |
| labels   | ``minilm_logreg``, ``tfidf_logreg`` |
| spans    | ``spacy_ner``, ``crf``, ``nearest_neighbour``; opt-in ``minilm_tokens`` (``eval.alternatives``) |
| fields   | ``nearest_neighbour``, the base model k-shot |
| records  | ``delex_neighbour``, ``nearest_neighbour``, the base model k-shot |
| summary  | ``lead_sentences``, ``centroid_sentence``, ``nearest_neighbour``, the base model k-shot |
| text     | ``nearest_neighbour``, the base model k-shot |
| any      | each ``eval.hosted`` model: the same prompt and k-shot examples behind an OpenAI-compatible endpoint (``hosted.py``) |

Each is fitted on train + validation only, its test predictions cached under the eval cache keyed by
the data hashes, the alternative's name and version (and the spaCy pipeline it starts from); an
alternative that raises comes back as a :class:`Fitted` with ``error`` set, which the verdict turns
into warning EVL052 and the report lists. The base model k-shot is not fitted here: the eval's LLM
stage computes it (row ``base_few_shot``) with the examples this stage picks (``AlternativesRun.shots``).
The local alternatives together get ``budget.local_budget`` seconds (10 % of the eval step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from tunerail.config import TunerailConfig
from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.alternatives.base import Alternative, FitData, Fitted, fit_one
from tunerail.eval.alternatives.budget import local_budget
from tunerail.eval.alternatives.delex import DELEX_NEIGHBOUR
from tunerail.eval.alternatives.hosted import fit_hosted, hosted_messages
from tunerail.eval.alternatives.classifiers import C_GRID, MINILM_LOGREG, TFIDF_LOGREG
from tunerail.eval.alternatives.neighbours import CENTROID_SENTENCE, LEAD_SENTENCES, NEAREST_NEIGHBOUR
from tunerail.eval.alternatives.shape import Shape, answer_shape
from tunerail.eval.alternatives.taggers import CRF, SPACY_NER, spacy_start
from tunerail.eval.alternatives.token_classifier import MINILM_TOKENS
from tunerail.errors import Problem, TunerailError
from tunerail.prompting import pick_template
from tunerail.tasks import pick_shots

FAMILIES: dict[str, tuple[Alternative, ...]] = {
    "labels": (TFIDF_LOGREG, MINILM_LOGREG),
    "spans": (SPACY_NER, CRF, NEAREST_NEIGHBOUR),
    "fields": (NEAREST_NEIGHBOUR,),
    "records": (NEAREST_NEIGHBOUR, DELEX_NEIGHBOUR),
    "summary": (NEAREST_NEIGHBOUR, LEAD_SENTENCES, CENTROID_SENTENCE),
    "text": (NEAREST_NEIGHBOUR,),
}
# The base model k-shot is the registered LLM alternative for these shapes: the eval's LLM stage
# computes it once (its ``base_few_shot`` row) with this k when ``eval.few_shot`` is unset; 3 as in
# ``select.few_shot``. Span extraction gets trained taggers instead, classification its label ranking.
BASE_K_SHOT: dict[str, int] = {"fields": 3, "records": 3, "summary": 3, "text": 3}
# Fitted only when named in ``eval.alternatives``: too slow for the 10 %-of-eval budget on 2 CPU cores.
OPT_IN: dict[str, tuple[Alternative, ...]] = {"spans": (MINILM_TOKENS,)}
ALL: dict[str, Alternative] = {a.name: a for family in (*FAMILIES.values(), *OPT_IN.values()) for a in family}


def choose(task: str, prompts: Sequence[str], answers: Sequence[str], opt_in: Sequence[str] = ()) -> tuple[Shape, list[Alternative]]:
    """The answer shape of the training rows, the alternatives registered for it and the opt-in ones named that fit it."""
    unknown = sorted(set(opt_in) - {a.name for family in OPT_IN.values() for a in family})
    if unknown:
        raise TunerailError(
            Problem(
                f"unknown opt-in alternative(s): {', '.join(unknown)}",
                field="eval.alternatives",
                fix=f"use any of: {', '.join(a.name for family in OPT_IN.values() for a in family)}",
            )
        )
    shape = answer_shape(task, prompts, answers)
    return shape, list(FAMILIES[shape]) + [a for a in OPT_IN.get(shape, ()) if a.name in opt_in]


class _Failed(Exception):
    """Carries a failed fit past the cache so errors are never cached."""

    def __init__(self, fitted: Fitted):
        super().__init__(fitted.error)
        self.fitted = fitted


def _environment(alt: Alternative) -> Any:
    """What outside the data changes an alternative's predictions (the pretrained spaCy pipeline installed)."""
    return spacy_start() if alt is SPACY_NER else None


def fit_alternatives(data: FitData, alternatives: Sequence[Alternative], cache: Path | None) -> list[Fitted]:
    """Fit each alternative (or read its cached predictions); failures come back with ``error`` set."""
    data_key = (
        data.task,
        G.data_hash([data.train_prompts, data.train_answers]),
        G.data_hash([data.validation_prompts, data.validation_answers]),
        G.data_hash(data.test_prompts),
        data.embedding_model,
        data.seed,
    )
    out: dict[str, Fitted] = {}
    spent = 0.0  # CPU seconds of this process (``budget.py``: a busy machine slows the eval as much)
    for alt in sorted(alternatives, key=lambda a: a.budgeted):  # budgeted ones last: they get what the others left
        left = None if data.time_budget_s is None else max(data.time_budget_s - spent, 0.0)
        started = time.process_time()
        fitted = _fit_or_read(alt, replace(data, time_budget_s=left), data_key, cache)
        cpu = time.process_time() - started
        fitted.details = {**fitted.details, "cpu_seconds": round(cpu, 2)}
        out[alt.name], spent = fitted, spent + cpu
    return [out[a.name] for a in alternatives]


def _fit_or_read(alt: Alternative, data: FitData, data_key: tuple[Any, ...], cache: Path | None) -> Fitted:
    """One alternative's cached predictions, else its fit (cached unless it failed)."""

    def compute() -> dict[str, Any]:
        fitted = fit_one(alt, data)
        if fitted.error is not None:
            raise _Failed(fitted)
        return fitted.to_dict()

    try:
        extra = _environment(alt)
        found, hit = G.cached(cache, G.cache_key("alternative", alt.name, alt.version, extra, C_GRID, *data_key), compute)
    except _Failed as failed:
        return failed.fitted
    except Exception as exc:  # the environment probe itself failed (a broken spaCy install)
        return Fitted(alt.name, alt.label, alt.library, [], 0.0, {}, f"{type(exc).__name__}: {exc}", alt.ship)
    fitted = Fitted.from_dict(found)
    fitted.details = {**fitted.details, "fit_seconds": round(fitted.seconds, 2), "cached": hit}
    fitted.seconds = 0.0 if hit else fitted.seconds
    return fitted


@dataclass
class AlternativesRun:
    """The eval step's alternatives: the fitted ones (with any errors), the answer shape, or why none ran.

    ``shots`` are the k-shot examples of the base model's k-shot row and of the hosted models;
    ``llm_rows`` the rows the eval's LLM stage computes that the registry lists as alternatives.
    """

    fitted: list[Fitted] = field(default_factory=list)
    shape: str | None = None
    skipped: str | None = None
    shots: list[tuple[str, str]] = field(default_factory=list)
    llm_rows: list[str] = field(default_factory=list)
    budget_s: float | None = None  # the local alternatives' time budget (``budget.py``)

    @property
    def scored(self) -> list[Fitted]:
        return [f for f in self.fitted if f.error is None]

    @property
    def failed(self) -> list[Fitted]:
        return [f for f in self.fitted if f.error is not None]


def for_eval(
    config: TunerailConfig,
    task: str,
    test: Sequence[Record],
    train: Sequence[Record] | None,
    val: Sequence[Record],
    cache: Path | None,
    shot_pool: Sequence[Record] = (),
) -> AlternativesRun:
    """The eval step's stage: the local alternatives for the answer shape, the base model's k, the hosted models.

    ``shot_pool`` holds the rows k-shot examples are picked from (the training split unless the eval
    was given others). ``eval.few_shot`` unset gives the base model ``BASE_K_SHOT[shape]`` examples.
    """
    run = _local(config, task, test, train, val, cache)
    k = config.eval.few_shot if config.eval.few_shot is not None else BASE_K_SHOT.get(run.shape or "", 0)
    run.shots = pick_shots(shot_pool, k) if k else []
    run.llm_rows = ["base_few_shot"] if run.shots and run.shape in BASE_K_SHOT else []
    template = pick_template(config)
    for spec in config.eval.hosted:
        messages, n_shots = hosted_messages(test, template, run.shots, spec, shot_pool)
        run.fitted.append(fit_hosted(spec, messages, n_shots, config.eval.max_new_tokens, cache))
    return run


def _local(
    config: TunerailConfig, task: str, test: Sequence[Record], train: Sequence[Record] | None, val: Sequence[Record], cache: Path | None
) -> AlternativesRun:
    """Choose by task and answer shape, fit on train + validation within the time budget, predict the test prompts."""
    if train is None:
        why = "switched off (eval.baselines: false)" if not config.eval.baselines else "no training split was given"
        return AlternativesRun(skipped=why)

    def answers(rows: Sequence[Record]) -> list[str]:
        return [str(r.label) for r in rows] if task == "classification" else [r.completion for r in rows]

    data = FitData(
        task,
        [r.prompt for r in train],
        answers(train),
        [r.prompt for r in val],
        answers(val),
        [r.prompt for r in test],
        embedding_model=config.model.embedding_model,
        seed=config.split.seed,
        time_budget_s=local_budget(len(test), config.eval.alternatives_budget_share),
    )
    shape = answer_shape(task, data.fit_prompts, data.fit_answers)
    if not config.eval.baselines:
        return AlternativesRun(shape=shape, skipped="switched off (eval.baselines: false)")
    if task == "classification" and len({r.label for r in train}) < 2:
        return AlternativesRun(shape=shape, skipped="the training split has fewer than two labels")
    shape, chosen = choose(task, data.fit_prompts, data.fit_answers, config.eval.alternatives)
    return AlternativesRun(fit_alternatives(data, chosen, cache), shape, budget_s=data.time_budget_s)
