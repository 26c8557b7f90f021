"""The registry: which alternatives a task gets, fitted once per data hash and never silently dropped.

| shape (see ``shape.py``) | alternatives, strongest first on the bundled demos |
| labels   | ``minilm_logreg``, ``tfidf_logreg`` |
| spans    | ``spacy_ner``, ``crf``, ``nearest_neighbour``; opt-in ``minilm_tokens`` (``eval.alternatives``) |
| fields   | ``nearest_neighbour`` |
| records  | ``delex_neighbour``, ``nearest_neighbour`` |
| summary  | ``lead_sentences``, ``centroid_sentence``, ``nearest_neighbour`` |
| text     | ``nearest_neighbour`` |

Each is fitted on train + validation only, its test predictions cached under the eval cache keyed by
the data hashes, the alternative's name and version (and the spaCy pipeline it starts from); an
alternative that raises comes back as a :class:`Fitted` with ``error`` set, which the verdict turns
into warning EVL052 and the report lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunerail.config import TunerailConfig
from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.alternatives.base import Alternative, FitData, Fitted, fit_one
from tunerail.eval.alternatives.delex import DELEX_NEIGHBOUR
from tunerail.eval.alternatives.classifiers import C_GRID, MINILM_LOGREG, TFIDF_LOGREG
from tunerail.eval.alternatives.neighbours import CENTROID_SENTENCE, LEAD_SENTENCES, NEAREST_NEIGHBOUR
from tunerail.eval.alternatives.shape import Shape, answer_shape
from tunerail.eval.alternatives.taggers import CRF, SPACY_NER, spacy_start
from tunerail.eval.alternatives.token_classifier import MINILM_TOKENS
from tunerail.errors import Problem, TunerailError

FAMILIES: dict[str, tuple[Alternative, ...]] = {
    "labels": (TFIDF_LOGREG, MINILM_LOGREG),
    "spans": (SPACY_NER, CRF, NEAREST_NEIGHBOUR),
    "fields": (NEAREST_NEIGHBOUR,),
    "records": (NEAREST_NEIGHBOUR, DELEX_NEIGHBOUR),
    "summary": (NEAREST_NEIGHBOUR, LEAD_SENTENCES, CENTROID_SENTENCE),
    "text": (NEAREST_NEIGHBOUR,),
}
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
    out = []
    for alt in alternatives:

        def compute(alt: Alternative = alt) -> dict[str, Any]:
            fitted = fit_one(alt, data)
            if fitted.error is not None:
                raise _Failed(fitted)
            return fitted.to_dict()

        try:
            extra = _environment(alt)
            found, hit = G.cached(cache, G.cache_key("alternative", alt.name, alt.version, extra, C_GRID, *data_key), compute)
        except _Failed as failed:
            out.append(failed.fitted)
            continue
        except Exception as exc:  # the environment probe itself failed (a broken spaCy install)
            out.append(Fitted(alt.name, alt.label, alt.library, [], 0.0, {}, f"{type(exc).__name__}: {exc}", alt.ship))
            continue
        fitted = Fitted.from_dict(found)
        fitted.details = {**fitted.details, "fit_seconds": round(fitted.seconds, 2), "cached": hit}
        fitted.seconds = 0.0 if hit else fitted.seconds
        out.append(fitted)
    return out


@dataclass
class AlternativesRun:
    """The eval step's alternatives: the fitted ones (with any errors), the answer shape, or why none ran."""

    fitted: list[Fitted] = field(default_factory=list)
    shape: str | None = None
    skipped: str | None = None

    @property
    def scored(self) -> list[Fitted]:
        return [f for f in self.fitted if f.error is None]

    @property
    def failed(self) -> list[Fitted]:
        return [f for f in self.fitted if f.error is not None]


def for_eval(
    config: TunerailConfig, task: str, test: Sequence[Record], train: Sequence[Record] | None, val: Sequence[Record], cache: Path | None
) -> AlternativesRun:
    """The eval step's stage: choose by task and answer shape, fit on train + validation, predict the test prompts."""
    if not config.eval.baselines:
        return AlternativesRun(skipped="switched off (eval.baselines: false)")
    if train is None:
        return AlternativesRun(skipped="no training split was given")

    def answers(rows: Sequence[Record]) -> list[str]:
        return [str(r.label) for r in rows] if task == "classification" else [r.completion for r in rows]

    if task == "classification" and len({r.label for r in train}) < 2:
        return AlternativesRun(skipped="the training split has fewer than two labels")
    data = FitData(
        task,
        [r.prompt for r in train],
        answers(train),
        [r.prompt for r in val],
        answers(val),
        [r.prompt for r in test],
        embedding_model=config.model.embedding_model,
        seed=config.split.seed,
    )
    shape, chosen = choose(task, data.fit_prompts, data.fit_answers, config.eval.alternatives)
    return AlternativesRun(fit_alternatives(data, chosen, cache), shape)
