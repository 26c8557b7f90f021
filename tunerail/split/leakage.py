"""`tunerail leakage A B [C ...]`: are rows of one set (near-)copies of rows of another?

Checks every pair of sets (the user's splits, or training data against a public benchmark) with
four methods, cheapest first (see :mod:`tunerail.split.matching`):

=================  ========  ==========================================================
check              code      catches
=================  ========  ==========================================================
leakage.exact      LEAK001   the same text after normalisation (case, Unicode, spaces)
leakage.ngram13    LEAK002   a shared 13-gram of words (GPT-3 / lm-evaluation-harness)
leakage.near       LEAK003   MinHash near-duplicates (word edits, small insertions)
leakage.semantic   LEAK004   paraphrases: embedding cosine similarity (reordering, synonyms)
leakage.paraphrase LEAK005   a row's nearest neighbour, reworded with a typo or a synonym
                             (embedding + character n-grams; warning, see matching.py)
=================  ========  ==========================================================

A leaking pair found by several methods is one finding, named after the strongest evidence
(exact > ngram13 > near > semantic) with every method's score in ``details``.

Anti-pattern: a test question that also sits in the training data, reworded; the test score
then measures memory, not generalisation. Fix: re-split with ``tunerail split`` (which keeps such
clusters in one split) or drop the leaking rows from the evaluation set.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from tunerail.config import TunerailConfig, load_config
from tunerail.data.records import Record
from tunerail.errors import Problem, TunerailError
from tunerail.data.records import RowRef
from tunerail.findings import Finding, Severity, dumps, sort_findings, summarize
from tunerail.report.redact import redact_text
from tunerail.split.matching import METHODS, embed, exact_matches, near_matches, ngram_matches, paraphrase_matches, semantic_matches

CODES = {"exact": "LEAK001", "ngram13": "LEAK002", "near": "LEAK003", "semantic": "LEAK004", "paraphrase": "LEAK005"}
DESCRIPTIONS = {
    "exact": "identical after normalisation",
    "ngram13": "shares a 13-gram of words",
    "near": "MinHash near-duplicate",
    "semantic": "embedding paraphrase",
    "paraphrase": "nearest-neighbour rewording (embedding + character n-grams)",
}


@dataclass
class LeakageResult:
    """Every leaking pair as a finding, a summary per pair of sets, and whether the gate fails."""

    findings: list[Finding]
    summary: list[dict[str, Any]]
    sets: dict[str, dict[str, Any]]
    thresholds: dict[str, Any]
    failed: bool
    out_dir: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sets": self.sets,
            "thresholds": self.thresholds,
            "summary": self.summary,
            "totals": summarize(self.findings),
            "failed": self.failed,
            "findings": self.findings,
        }


def _load_set(name: str, source: str | Path | Sequence[Record], config: TunerailConfig) -> tuple[list[Record], dict[str, Any]]:
    if isinstance(source, (str, Path)):
        from tunerail.data.loaders import load_records
        from tunerail.io import hash_file

        path = Path(source)
        from tunerail.errors import DataError

        project_layout = config.data.format != "auto" or bool(config.data.columns)
        try:
            records, rejections, fmt = load_records(path, config.data.format, config.data.columns)
        except DataError:  # e.g. the project's data.columns are in none of its rows
            if not project_layout:
                raise
            records, rejections, fmt = [], [], "auto"
        if not records and project_layout:
            # A public benchmark rarely shares the project's column names: detect its own format.
            records, rejections, fmt = load_records(path, "auto")
        info: dict[str, Any] = {
            "path": str(path),
            "rows": len(records),
            "rejected_rows": len(rejections),
            "format": fmt,
            "sha256": hash_file(path),
        }
    else:
        records = list(source)
        info = {"path": None, "rows": len(records), "rejected_rows": 0, "format": records[0].format if records else None, "sha256": None}
    if not records:
        raise TunerailError(
            Problem(f"set {name!r} has no usable rows", file=info["path"], fix="check the file and data.format / data.columns")
        )
    return records, info


def _texts(records: Sequence[Record], on: str) -> list[str]:
    return [r.prompt if on == "prompt" else r.text for r in records]


# size: leakage: one keyword per option of `tunerail leakage` (10 parameters); the body is stage calls
def leakage(
    sets: Mapping[str, str | Path | Sequence[Record]],
    *,
    out_dir: str | Path | None = None,
    config: TunerailConfig | str | Path | None = None,
    methods: Sequence[str] = METHODS,
    near_threshold: float | None = None,
    semantic_threshold: float | None = None,
    semantic: bool | Literal["auto"] = "auto",
    on: Literal["prompt", "text"] = "prompt",
    fail_on: Severity | str = Severity.ERROR,
    max_leaks: int = 0,
) -> LeakageResult:
    """Check every pair of ``sets`` for leaking rows; write ``leakage.json`` and ``leakage.html``.

    Parameters
    ----------
    sets : name -> data file or list of records, at least two. Order matters only for reporting:
        for a pair (A, B) the rows of the later set B are looked up among the rows of A.
    out_dir : where to write the JSON and the HTML page (None: write nothing).
    config : reads data.format/columns (to load files), doctor.near_duplicate_threshold and
        split.semantic_threshold, so by default ``leakage`` uses the thresholds ``split`` grouped with.
    methods : subset of ``exact, ngram13, near, semantic``.
    near_threshold, semantic_threshold : override the config's thresholds.
    semantic : embeddings on/off; ``auto`` = on below ``split.semantic_max_rows`` rows in total.
    on : compare ``prompt`` (default: the model's input, where a test question leaks) or the full
        ``text`` (prompt + completion).
    fail_on, max_leaks : ``failed`` is True when more than ``max_leaks`` findings are at or above
        ``fail_on`` (default: any leak fails; every leak is an error).
    """
    if not isinstance(config, TunerailConfig):
        config = load_config(config)
    _check_request(sets, methods)
    near_t = near_threshold if near_threshold is not None else config.doctor.near_duplicate_threshold
    sem_t = semantic_threshold if semantic_threshold is not None else config.split.semantic_threshold
    loaded = {name: _load_set(name, source, config) for name, source in sets.items()}
    records = {name: recs for name, (recs, _) in loaded.items()}
    infos = {name: info for name, (_, info) in loaded.items()}
    texts = {name: _texts(recs, on) for name, recs in records.items()}
    total = sum(len(r) for r in records.values())
    use_semantic = "semantic" in methods and (total < config.split.semantic_max_rows if semantic == "auto" else bool(semantic))
    vectors = {}
    if use_semantic:
        for name in records:
            vectors[name] = embed(texts[name], model=config.model.embedding_model)
    para_t = config.split.paraphrase_threshold
    reworded = _cross_set_paraphrases(texts, vectors, para_t) if use_semantic and "paraphrase" in methods and para_t is not None else {}

    findings: list[Finding] = []
    summary: list[dict[str, Any]] = []
    matchers = _matchers(methods, near_t, sem_t if use_semantic else None, vectors)
    for a, b in itertools.combinations(list(records), 2):
        found = _pair_matches(a, b, texts, matchers, reworded.get((a, b), []))
        for (i, j), scores in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            findings.append(_finding(a, b, records[a][i], records[b][j], texts[a][i], texts[b][j], scores))
        by_method = {m: sum(1 for s in found.values() if m in s) for m in methods if m not in ("semantic", "paraphrase") or use_semantic}
        summary.append(_pair_summary(a, b, records, found, by_method))
    findings = sort_findings(findings)
    at_level = sum(1 for f in findings if f.severity >= Severity(fail_on))
    thresholds = {
        "near": near_t,
        "semantic": sem_t if use_semantic else None,
        "ngram": 13,
        "on": on,
        "methods": [m for m in methods if m not in ("semantic", "paraphrase") or use_semantic],
        "paraphrase": para_t if use_semantic else None,
        "fail_on": Severity(fail_on).value,
        "max_leaks": max_leaks,
    }
    result = LeakageResult(findings, summary, infos, thresholds, at_level > max_leaks)
    if out_dir is not None:
        _write(result, Path(out_dir), records, texts)
    return result


def _check_request(sets: Mapping[str, Any], methods: Sequence[str]) -> None:
    """At least two sets and known method names, before anything loads."""
    if len(sets) < 2:
        raise TunerailError(
            Problem(
                f"need at least two sets to compare, got {len(sets)}",
                fix="pass two or more files, e.g. `tunerail leakage train.jsonl test.jsonl`",
            )
        )
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise TunerailError(Problem(f"unknown method(s) {', '.join(unknown)}", fix=f"use {', '.join(METHODS)}"))


# (texts of a, texts of b, name of a, name of b) -> (i in a, j in b, score)
Matcher = Callable[[list[str], list[str], str, str], list[tuple[int, int, float]]]


def _matchers(methods: Sequence[str], near_t: float, sem_t: float | None, vectors: Mapping[str, Any]) -> dict[str, Matcher]:
    """The detectors to run on every pair of sets, by method name (semantic only when ``sem_t`` is set)."""
    out: dict[str, Matcher] = {}
    if "exact" in methods:
        out["exact"] = lambda ta, tb, a, b: exact_matches(tb, ta)
    if "ngram13" in methods:
        out["ngram13"] = lambda ta, tb, a, b: ngram_matches(tb, ta)
    if "near" in methods:
        out["near"] = lambda ta, tb, a, b: near_matches(tb, ta, threshold=near_t)
    if sem_t is not None:
        out["semantic"] = lambda ta, tb, a, b: semantic_matches(vectors[b], vectors[a], threshold=sem_t)
    return out


def _pair_matches(
    a: str, b: str, texts: Mapping[str, list[str]], matchers: Mapping[str, Matcher], reworded: list[tuple[int, int, float]]
) -> dict[tuple[int, int], dict[str, float]]:
    """Every leaking (row of a, row of b) pair with the score of each method that found it."""
    found: dict[tuple[int, int], dict[str, float]] = {}
    hits = {method: match(texts[a], texts[b], a, b) for method, match in matchers.items()}
    hits["paraphrase"] = reworded
    for method, pairs in hits.items():
        for i, j, score in pairs:
            found.setdefault((i, j), {})[method] = round(float(score), 4)
    return found


def _pair_summary(
    a: str, b: str, records: Mapping[str, Sequence[Record]], found: Mapping[tuple[int, int], Any], by_method: dict[str, int]
) -> dict[str, Any]:
    return {
        "a": a,
        "b": b,
        "rows_a": len(records[a]),
        "rows_b": len(records[b]),
        "leaking_pairs": len(found),
        "rows_a_leaking": len({i for i, _ in found}),
        "rows_b_leaking": len({j for _, j in found}),
        "share_of_b": round(len({j for _, j in found}) / len(records[b]), 4),
        "by_method": by_method,
    }


def _cross_set_paraphrases(
    texts: Mapping[str, list[str]], vectors: Mapping[str, Any], threshold: float
) -> dict[tuple[str, str], list[tuple[int, int, float]]]:
    """Nearest-neighbour rewordings over the union of the sets, as (i in a, j in b, score) per set pair.

    The union is what ``split`` grouped, so a pair found here is a pair the split kept together.
    """
    import numpy as np

    names = list(texts)
    owner = [(name, k) for name in names for k in range(len(texts[name]))]
    pairs = paraphrase_matches(
        [t for name in names for t in texts[name]], np.concatenate([np.asarray(vectors[name]) for name in names]), threshold
    )
    order = {name: pos for pos, name in enumerate(names)}
    out: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
    for x, y, score in pairs:
        (na, ia), (nb, ib) = owner[x], owner[y]
        if na == nb:
            continue
        if order[na] > order[nb]:
            (na, ia), (nb, ib) = (nb, ib), (na, ia)
        out.setdefault((na, nb), []).append((ia, ib, score))
    return out


def _finding(a: str, b: str, rec_a: Record, rec_b: Record, text_a: str, text_b: str, scores: dict[str, float]) -> Finding:
    method = next(m for m in METHODS if m in scores)
    evidence = ", ".join(f"{m} {s:.2f}" for m, s in scores.items())
    # a nearest-neighbour rewording alone is likely, not certain (against a public benchmark every
    # row has a nearest neighbour): a warning; any other method's evidence is an error
    severity = Severity.WARNING if method == "paraphrase" else Severity.ERROR
    return Finding(
        check=f"leakage.{method}",
        code=CODES[method],
        severity=severity,
        message=f"row {rec_b.index} of {b} leaks row {rec_a.index} of {a}: {DESCRIPTIONS[method]} ({evidence})",
        fix=f"re-split with `tunerail split` (keeps such clusters in one split) or drop the row from {b}",
        rows=[RowRef(rec_a.index, rec_a.line, rec_a.ref.file), RowRef(rec_b.index, rec_b.line, rec_b.ref.file)],
        cluster=f"{a}~{b}",
        details={
            "sets": [a, b],
            "methods": scores,
            "texts": [redact_text(text_a)[:300], redact_text(text_b)[:300]],
            "labels": [rec_a.label, rec_b.label],
        },
    )


def _write(result: LeakageResult, out: Path, records: dict[str, list[Record]], texts: dict[str, list[str]]) -> None:
    from tunerail.report import write_report
    from tunerail.io import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    result.out_dir = out
    result.paths["json"] = write_atomic(out / "leakage.json", dumps(result.to_dict()))
    result.paths["html"] = write_report(
        out / "leakage.html",
        "leakage.html",
        result=result.to_dict(),
        findings=[f.to_dict() for f in result.findings[:1000]],
        hidden=max(0, len(result.findings) - 1000),
    )
