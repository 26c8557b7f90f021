"""Task dispatch in one place: score outputs with the task metric, pick k-shot examples, check labels.

select, eval and the alternatives registry all score a system's answers the same way and pick the
same k-shot examples; before this module each kept its own copy (issue 24 item 2). A new task adds
one branch here and one scorer in :mod:`tunerail.scoring`.

| task           | scorer                                                   | k-shot pick |
| classification | label match of the first line (+ ranking when given)     | one example per label first |
| extraction     | field P/R/F1 over ``(field, normalised value)`` pairs    | the first k distinct prompts |
| generation/chat| ROUGE, BLEU, chrF, exact match                           | the first k distinct prompts |
"""

from __future__ import annotations

from typing import Any, Sequence

from tunerail.data.records import Record
from tunerail.errors import Problem, TunerailError
from tunerail.scoring import ModelScores, add_perplexity, score_classification, score_extraction, score_generation


def score(
    task: str, references: Sequence[str], outputs: Sequence[str], labels: Sequence[str], *, ranked: Sequence[str] | None = None
) -> ModelScores:
    """Score ``outputs`` against ``references`` with the task's metrics (per-row arrays + corpus statistics).

    ``ranked`` (classification only) is the label each row's log-likelihood ranking chose; select
    passes its ranked answers as both ``outputs`` and ``ranked``.
    """
    if task == "classification":
        return score_classification(references, outputs, labels, ranked=ranked)
    if task == "extraction":
        return score_extraction(references, outputs)
    return score_generation(references, outputs)


def score_output(task: str, references: Sequence[str], out: dict[str, Any], labels: Sequence[str]) -> ModelScores:
    """Score one system's output bundle (``text``, optional ``ranked``, ``ref_logp``/``ref_tokens``)."""
    s = score(task, references, out["text"], labels, ranked=out.get("ranked"))
    if "ref_logp" in out:
        add_perplexity(s, out["ref_logp"], out["ref_tokens"])
    return s


def pick_shots(records: Sequence[Record], k: int) -> list[tuple[str, str]]:
    """k (prompt, answer) examples in file order, one per label (or per prompt) so a few shots cover several cases.

    Without labels, a prompt that came already is skipped: multi-reference data (several human
    answers per input, kept together by the grouped split) would otherwise give k answers to one input.
    """
    seen: set[Any] = set()
    shots: list[tuple[str, str]] = []
    for r in records:
        if len(shots) == k:
            break
        key = r.label if r.label is not None else ("prompt", r.prompt)
        if key not in seen:
            seen.add(key)
            shots.append((r.prompt, r.completion))
    return shots


def check_labels(task: str, records: Sequence[Record]) -> None:
    """Classification needs a label on every row; raise a TunerailError naming the fix when one is missing."""
    if task == "classification" and any(r.label is None for r in records):
        raise TunerailError(
            Problem(
                "task is classification but the rows have no label column",
                field="data.columns",
                fix="map the label column (data.columns: {label: ...}) or set task: generation",
            )
        )
