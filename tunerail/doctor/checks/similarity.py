"""Similar rows: near-duplicates (MinHash LSH), paraphrases (MiniLM), and conflicting answers or labels.

Each finding is one cluster and lists every member in ``rows``. The three checks do not count
a pair twice: near-duplicates leave out clusters that are exact copies (``duplicates.exact``
reports them), paraphrases leave out pairs already exact or near copies, and rows whose labels
or answers disagree are reported as conflicts, never as duplicates (``--fix`` must not silently
pick one of two labels).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np

from tunerail.data.records import normalize_text, normalized_pieces
from tunerail.doctor.checks._common import excerpt, found, refs
from tunerail.doctor.checks.prompt_words import difference_echoed, difference_named, minimal_pair, record_key
from tunerail.doctor.context import CheckContext
from tunerail.doctor.near_duplicates import clusters_from_pairs, jaccard, near_duplicate_pairs, shingles
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity


def _answer_key(ctx: CheckContext) -> Callable[[int], str]:
    """What must agree inside a duplicate cluster: the label, or the normalised answer."""
    if ctx.is_classification:
        return lambda i: str(ctx.records[i].label)
    return lambda i: normalize_text(ctx.records[i].completion)


def _split_by(cluster: Sequence[int], key: Callable[[int], str]) -> list[list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in cluster:
        groups[key(i)].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _exact_groups(texts: Sequence[str]) -> list[int]:
    """Id of the normalised text per row (equal ids = exact copies).

    Keyed by a 64-bit digest of the normalised text, not the text itself, so a 1M-row file
    is not held a second time (a collision needs ~2^32 distinct texts).
    """
    return _ids(_normalized_digest(t) for t in texts)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def _normalized_digest(text: str) -> bytes:
    """8-byte digest of ``normalize_text(text)``, fed piece by piece (long rows are never normalised whole)."""
    h = hashlib.blake2b(digest_size=8)
    for piece in normalized_pieces(text):
        h.update(piece.encode("utf-8"))
    return h.digest()


def _ids(keys: Iterable[Hashable]) -> list[int]:
    """Dense id per key, numbered in order of first occurrence."""
    ids: dict[Hashable, int] = {}
    return [ids.setdefault(k, len(ids)) for k in keys]


def near_duplicate_groups(ctx: CheckContext) -> list[list[int]]:
    """Near-duplicate clusters that agree on the answer and are not all exact copies.

    For generation, answers agree when they are near-same (``answers_agree``), not only equal:
    a copy whose prompt and answer are each a few words apart is a near-duplicate, not a
    conflict (it used to fall between the two checks).
    """
    exact = _exact_groups(ctx.texts)
    out = []
    for cluster in ctx.near_duplicate_clusters:
        groups = _split_by(cluster, _answer_key(ctx)) if ctx.is_classification else _split_by_agreement(ctx, cluster)
        for group in (g for whole in groups for g in _split_by(whole, lambda i: _record_key(ctx, i))):
            if len({exact[i] for i in group}) > 1:
                out.append(group)
    return sorted(out, key=lambda g: g[0])


def _record_key(ctx: CheckContext, i: int) -> str:
    """The record row ``i``'s prompt holds, as a sorted key; ``""`` unless the data's prompts are records.

    Records that differ in a value are different inputs to describe, not copies of one example:
    E2E's records of one restaurant share most words, so MinHash and MiniLM put them together.
    """
    return record_key(ctx.records[i].prompt) if ctx.prompts_are_records else ""


def answers_agree(a: str, b: str, threshold: float) -> bool:
    """Two answers say the same: equal after normalisation, or word sets within Jaccard ``threshold - 0.2``.

    The rows around them already match at ``threshold`` as a whole; a few edited words in a
    short answer lower its own Jaccard more (4 of 5 words kept: 0.67), while different facts in
    short answers ("Paris" / "Rome") stay far apart.
    """
    if normalize_text(a) == normalize_text(b):
        return True
    return jaccard(shingles(a), shingles(b)) >= threshold - 0.2


def _same_request(ctx: CheckContext, i: int, j: int, threshold: float) -> bool:
    """Rows ``i`` and ``j`` (a near-duplicate pair) teach one thing: their answers agree, and no word one prompt holds
    and the other lacks is named by its own answer (:func:`difference_named`: "first_even" / "first_odd")."""
    a, b = ctx.records[i], ctx.records[j]
    if not answers_agree(a.completion, b.completion, threshold):
        return False
    return ctx.prompts_are_records or not difference_named((a.prompt, a.completion), (b.prompt, b.completion))


def _split_by_agreement(ctx: CheckContext, cluster: Sequence[int]) -> list[list[int]]:
    """Components of a cluster where rows are linked when their answers agree (exact copies first)."""
    threshold = ctx.config.doctor.near_duplicate_threshold
    key = _answer_key(ctx)
    by_answer: dict[str, list[int]] = defaultdict(list)
    for i in cluster:
        by_answer[key(i)].append(i)
    heads = list(by_answer)
    edges = [
        (by_answer[heads[x]][0], by_answer[heads[y]][0])
        for x in range(len(heads))
        for y in range(x + 1, len(heads))
        if len(heads) <= 200 and _same_request(ctx, by_answer[heads[x]][0], by_answer[heads[y]][0], threshold)
    ]
    edges += [(members[0], m) for members in by_answer.values() for m in members[1:]]
    local = {row: k for k, row in enumerate(cluster)}  # components within the cluster only
    groups = clusters_from_pairs(len(cluster), [(local[a], local[b]) for a, b in edges])
    return [sorted(cluster[k] for k in g) for g in groups]


@register("DOC050", "duplicates.near")
def near_duplicates(ctx: CheckContext) -> list[Finding]:
    """Rows that are the same example up to a few edited words (MinHash LSH on word sets, exact Jaccard).

    Anti-pattern: a row copied with small edits counts several times in training and, split
    at random, puts the same example in train and test. Fix: keep one row per cluster
    (``--fix`` keeps the first); rows whose label or answer differs are reported by
    ``labels.conflict`` instead, because dropping them would pick an answer blindly.

    Info for classification, and kept by ``--fix``: short queries of one intent reworded by a word
    or two ("How do I track the card you sent me?" / "What can I do to track the card you sent
    me?") are what intent data is made of, the variation the classifier learns from; 14.7 % of
    Banking77's and 19.7 % of CLINC150's real training rows were flagged as warnings. What would
    hurt, one cluster on both sides of the split, ``tunerail split`` prevents by grouping them.
    """
    threshold = ctx.config.doctor.near_duplicate_threshold
    rewordings = ctx.is_classification
    findings = []
    for group in near_duplicate_groups(ctx):
        first = shingles(ctx.texts[group[0]])
        sims = [round(jaccard(first, shingles(ctx.texts[i])), 4) for i in group]
        head = ctx.records[group[0]]
        fix = (
            "rewordings with one label are kept (--fix leaves them; tunerail split keeps the cluster in one split); "
            "drop them yourself only if they are copies of one example"
            if rewordings
            else "keep one row per cluster (--fix keeps the first); if the edits matter, make the rows differ more"
        )
        findings.append(
            found(
                Severity.INFO if rewordings else Severity.WARNING,
                f'{len(group)} rows are near-duplicates (word-set Jaccard >= {threshold:g}) of line {head.line}: "{excerpt(head.prompt)}"',
                fix,
                rows=refs(ctx.records, group),
                cluster=f"near-{head.index}",
                details={
                    "fix_action": "keep" if rewordings else "drop_except_first",
                    "size": len(group),
                    "jaccard_to_first": sims,
                    "min_jaccard": min(sims[1:]),
                },
            )
        )
    return findings


@register("DOC051", "duplicates.semantic", needs=("embeddings",))
def semantic_duplicates(ctx: CheckContext) -> list[Finding]:
    """Paraphrases: prompts that say the same thing in other words (MiniLM cosine, nearest neighbours).

    Anti-pattern: many rephrasings of one prompt over-weight it, and once split they let the
    test set reward memorisation. Fix: drop redundant paraphrases or keep each cluster in one
    split (``tunerail split`` groups them). Pairs that are already exact or near copies are
    left to those checks; paraphrases with different labels or answers are conflicts.
    Info for classification (intent data is paraphrases by design; what matters is that a
    cluster stays in one split), warning otherwise (the same request answered twice).
    """
    exact = _exact_groups(ctx.texts)
    near_of = {m: c for c, members in enumerate(ctx.near_duplicate_clusters) for m in members}
    answer = _answer_key(ctx)
    pairs = [
        (i, j, s)
        for i, j, s in ctx.similar_prompt_pairs
        if exact[i] != exact[j]
        and (i not in near_of or near_of.get(i) != near_of.get(j))
        and (answer(i) == answer(j) or _answers_agree(ctx, (i, j)))
        and _record_key(ctx, i) == _record_key(ctx, j)
    ]
    best: dict[int, float] = {}
    for i, j, s in pairs:
        best[i] = max(best.get(i, 0.0), s)
        best[j] = max(best.get(j, 0.0), s)
    threshold = ctx.config.doctor.semantic_duplicate_threshold
    findings = []
    for group in clusters_from_pairs(len(ctx.records), pairs):
        head = ctx.records[group[0]]
        findings.append(
            found(
                Severity.INFO if ctx.is_classification else Severity.WARNING,
                f'{len(group)} rows are paraphrases (MiniLM cosine >= {threshold:g}) of line {head.line}: "{excerpt(head.prompt)}"',
                "drop redundant paraphrases, or keep the cluster in one split (tunerail split groups them)",
                rows=refs(ctx.records, group),
                cluster=f"semantic-{head.index}",
                details={"size": len(group), "best_cosine": [round(best[i], 4) for i in group]},
            )
        )
    return findings


def _conflict_groups(ctx: CheckContext, exact: list[tuple[int, int]], similar: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Clusters of rows whose prompts match but whose labels or answers disagree.

    Components of: exact-prompt edges (copies of a prompt are always listed together) plus the
    near/paraphrase edges whose two rows disagree. Similar rows that agree do not link clusters,
    so "where is my card" (card_arrival) does not chain to every card question.
    """
    answer = _answer_key(ctx)
    disagree = [
        (i, j)
        for i, j in similar
        if answer(i) != answer(j)
        and not _answers_agree(ctx, (i, j))
        and not (ctx.is_classification and minimal_pair(ctx.records[i].prompt, ctx.records[j].prompt))
        and not (not ctx.is_classification and _different_inputs(ctx, i, j))
    ]
    out = []
    for cluster in clusters_from_pairs(len(ctx.records), exact + disagree):
        if len({answer(i) for i in cluster}) > 1 and not _answers_agree(ctx, cluster):
            out.append(cluster)
    return out


def _different_inputs(ctx: CheckContext, i: int, j: int) -> bool:
    a, b = ctx.records[i], ctx.records[j]
    pair_a, pair_b = (a.prompt, a.completion), (b.prompt, b.completion)
    if not ctx.prompts_are_records and difference_named(pair_a, pair_b):
        return True
    return difference_echoed(pair_a, pair_b, records=ctx.prompts_are_records)


def _answers_agree(ctx: CheckContext, cluster: Sequence[int]) -> bool:
    """Generation: answers that are near-duplicates of each other are the same answer."""
    if ctx.is_classification:
        return False
    threshold = ctx.config.doctor.near_duplicate_threshold
    first = ctx.records[cluster[0]].completion
    return all(answers_agree(first, ctx.records[i].completion, threshold) for i in cluster[1:])


def _exact_prompt_edges(ctx: CheckContext) -> list[tuple[int, int]]:
    """Each row paired with the first row of the same normalised prompt."""
    first: dict[bytes, int] = {}  # keyed by digest: no normalised copy of every prompt
    edges = []
    for i, p in enumerate(ctx.prompts):
        j = first.setdefault(_normalized_digest(p), i)
        if j != i:
            edges.append((j, i))
    return edges


def _near_prompt_edges(ctx: CheckContext) -> list[tuple[int, int]]:
    """Near-same prompt pairs whose answers differ: the only near pairs ``_conflict_groups`` keeps.

    Pairs that agree are dropped inside the LSH, before verification (``keep``), so on a file
    of many near-copies with one label the pair list is never built; computed once per audit.
    """
    if ctx.near_prompt_edges is None:
        answers = (_digest(str(r.label)) if ctx.is_classification else _normalized_digest(r.completion) for r in ctx.records)
        answer_id = np.array(_ids(answers), dtype=np.int64)
        pairs = near_duplicate_pairs(
            ctx.prompts, ctx.config.doctor.near_duplicate_threshold, keep=lambda a, b: answer_id[a] != answer_id[b]
        )
        ctx.near_prompt_edges = [(i, j) for i, j, _ in pairs]
    return ctx.near_prompt_edges


def _conflict_finding(ctx: CheckContext, group: list[int], how: str) -> Finding:
    recs = [ctx.records[i] for i in group]
    head = recs[0]
    labels_of: dict[str, set[str]] = defaultdict(set)
    for r in recs:
        labels_of[normalize_text(r.prompt)].add(str(r.label))
    # an error only when one and the same prompt carries two labels; a duplicate of one side of a
    # near match (which --fix removes) does not make the near match an error
    exact_same = any(len(labels) > 1 for labels in labels_of.values())
    details: dict[str, Any]
    if ctx.is_classification:
        by_label: dict[str, list[int]] = defaultdict(list)
        for r in recs:
            by_label[str(r.label)].append(r.index)
        severity = Severity.ERROR if how == "same" and exact_same else Severity.WARNING
        what = "labels " + ", ".join(f"'{lab}' ({len(ix)})" for lab, ix in sorted(by_label.items()))
        details = {"labels": dict(sorted(by_label.items()))}
        fix = "decide the right label for this prompt and relabel or drop the other rows"
    else:
        # two answers to the same prompt are a conflict; to a paraphrase they may just be worded
        # differently (measured on alpaca_5000: all 4 such pairs said the same thing)
        severity = Severity.WARNING if how == "same" else Severity.INFO
        what = f"{len({normalize_text(r.completion) for r in recs})} different answers"
        details = {}
        fix = "keep the best answer (or make the prompts say what distinguishes the answers) and drop the others"
    details.update(
        {
            "size": len(group),
            "how": how,
            "members": [
                {
                    "index": r.index,
                    "line": r.line,
                    "prompt": excerpt(r.prompt, 120),
                    **({"label": r.label} if ctx.is_classification else {"answer": excerpt(r.completion, 120)}),
                }
                for r in recs
            ],
        }
    )
    kind = {"same": "the same or near-same prompt", "semantic": "paraphrased prompts"}[how]
    return found(
        severity,
        f'{len(group)} rows with {kind} have {what}: "{excerpt(head.prompt)}"',
        fix,
        rows=refs(ctx.records, group),
        cluster=f"conflict-{head.index}",
        details=details,
    )


MULTI_REFERENCE_SHARE = 0.2  # rows under repeated prompts with several answers, at or above which written data is multi-reference
MULTI_REFERENCE_PROMPTS = 10


def _multi_reference(ctx: CheckContext, groups: list[list[int]]) -> Finding | None:
    """Written answers where many prompts carry several: multi-reference data by design, one finding instead of one per prompt.

    CommonGen gives each concept set up to four people's sentences, E2E each record up to eight
    descriptions: several right answers, which training learns from and eval scores against. A
    label (classification) or an extracted value has one right answer, so those stay conflicts,
    and so do a few repeated prompts in written data (below ``MULTI_REFERENCE_SHARE`` of the rows).
    """
    if ctx.is_classification or ctx.task == "extraction":
        return None
    repeated = [g for g in groups if len({normalize_text(ctx.records[i].prompt) for i in g}) == 1]
    rows = sorted(i for g in repeated for i in g)
    if len(repeated) < MULTI_REFERENCE_PROMPTS or len(rows) < MULTI_REFERENCE_SHARE * len(ctx.records):
        return None
    sizes = [len(g) for g in repeated]
    return found(
        Severity.INFO,
        f"multi-reference data: {len(repeated)} prompts carry {min(sizes)}-{max(sizes)} different answers each ({len(rows)} rows, "
        f"{len(rows) / len(ctx.records):.0%}): several right answers per prompt; training learns from each, eval scores against each "
        "(and counts a prompt once in its confidence intervals)",
        "nothing to fix if several answers are right by design; if they disagree, keep the best and drop the others",
        rows=refs(ctx.records, rows),
        cluster="multi-reference",
        details={"prompts": len(repeated), "rows": len(rows), "near_groups": len(groups) - len(repeated)},
    )


@register("DOC052", "labels.conflict")
def label_conflicts(ctx: CheckContext) -> list[Finding]:
    """The same or near-same prompt with different labels or answers (exact or MinHash match).

    Anti-pattern: the model is taught two answers to one question; for classification it is a
    ceiling on accuracy and a sign of labelling disagreement. Error when the exact same prompt
    carries two labels, warning when prompts only nearly match. Written data whose prompts
    mostly carry several answers is multi-reference by design: one info finding. Fix: decide the
    right label or answer and relabel or drop the rest.
    """
    groups = _conflict_groups(ctx, _exact_prompt_edges(ctx), _near_prompt_edges(ctx))
    if multi := _multi_reference(ctx, groups):
        return [multi]
    return [_conflict_finding(ctx, g, "same") for g in groups]


@register("DOC053", "labels.conflict_paraphrase", needs=("embeddings",))
def paraphrase_conflicts(ctx: CheckContext) -> list[Finding]:
    """Paraphrased prompts (MiniLM cosine) with different labels or answers, not already in ``labels.conflict``.

    Anti-pattern: two wordings of one request labelled differently. Fix: relabel consistently,
    or make the prompts differ where the intent differs.
    """
    exact, near = _exact_prompt_edges(ctx), _near_prompt_edges(ctx)
    covered = {i for g in _conflict_groups(ctx, exact, near) for i in g}
    semantic = [(i, j) for i, j, _ in ctx.similar_prompt_pairs]
    return [_conflict_finding(ctx, g, "semantic") for g in _conflict_groups(ctx, exact, near + semantic) if not set(g) <= covered]
