"""Eval stages 6-8, each optional or cheap beside inference: forgetting, the LLM judge, review material.

Each stage reads the answers the inference stage produced and returns the dict report.json records.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunerail import review as R
from tunerail.config import TunerailConfig
from tunerail.data.records import Record
from tunerail.eval import forgetting as F
from tunerail.eval import generate as G
from tunerail.eval.inference import ProgressFn
from tunerail.eval.judge import ChatClient, pairwise_judge
from tunerail.review.results import existing_results
from tunerail.scoring import ModelScores


def forgetting_stage(
    config: TunerailConfig, base_lm: G.LoadedModel, tuned_lm: G.LoadedModel, cache: Path | None, progress: ProgressFn | None
) -> dict[str, Any]:
    """The general-capability suite on both models (cached per model), compared against ``criteria.max_forgetting``."""
    ev = config.eval
    suite = F.load_suite()
    data = G.data_hash([r["id"] for r in suite])
    fb, _ = G.cached(
        cache,
        G.cache_key("forget", base_lm.fingerprint, data),
        lambda: _suite_dict(F.run_suite(base_lm, suite, batch_size=ev.batch_size, progress=progress)),
    )
    ft, _ = G.cached(
        cache,
        G.cache_key("forget", tuned_lm.fingerprint, data),
        lambda: _suite_dict(F.run_suite(tuned_lm, suite, batch_size=ev.batch_size, progress=progress)),
    )
    return F.compare(_suite_obj(fb), _suite_obj(ft), budget=config.criteria.max_forgetting, resamples=ev.bootstrap).to_dict()


def _suite_dict(s: F.SuiteScores) -> dict[str, Any]:
    return {"answer_nll": s.answer_nll.tolist(), "mc_correct": s.mc_correct.tolist(), "seconds": s.seconds}


def _suite_obj(d: dict[str, Any]) -> F.SuiteScores:
    return F.SuiteScores(np.asarray(d["answer_nll"]), np.asarray(d["mc_correct"]), float(d["seconds"]))


def judge_stage(
    config: TunerailConfig, client: ChatClient, records: Sequence[Record], refs: Sequence[str], outs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Pairwise LLM-as-judge on a seeded sample of rows (``eval.judge.max_pairs``), base vs tuned in both orders."""
    n = len(records)
    picked = sorted(random.Random(config.split.seed).sample(range(n), min(config.eval.judge.max_pairs, n)))
    judge = pairwise_judge(
        client,
        config.eval.judge.rubric,
        [records[i].prompt for i in picked],
        [refs[i] for i in picked],
        [outs["base"]["text"][i] for i in picked],
        [outs["tuned"]["text"][i] for i in picked],
    ).to_dict()
    judge["rows"] = picked
    return judge


def review_stage(
    config: TunerailConfig,
    records: Sequence[Record],
    refs: Sequence[str],
    outs: dict[str, dict[str, Any]],
    scored: dict[str, ModelScores],
    out_dir: Path,
) -> dict[str, Any]:
    """Side-by-side sample, worst cases, slices, the export for raters and the pairwise items; earlier human results if current."""
    ev = config.eval
    rows = [
        R.ReviewRow(r.index, r.line, r.prompt, ref, b, tu, float(bs), float(ts), r.label)
        for r, ref, b, tu, bs, ts in zip(
            records, refs, outs["base"]["text"], outs["tuned"]["text"], scored["base"].primary, scored["tuned"].primary
        )
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    export = R.export_for_review(R.side_by_side(rows, max(ev.review_samples, 1), seed=config.split.seed), out_dir / "review.csv")
    review: dict[str, Any] = {
        "samples": [r.to_dict() for r in R.side_by_side(rows, ev.review_samples, seed=config.split.seed)],
        "worst": [r.to_dict() for r in R.worst_cases(rows, 10)],
        "slices": R.slices(rows),
        "export": str(export),
        "key": str(R.key_path(export)),
        "items": str(
            R.write_items(
                rows,
                out_dir / R.ITEMS_FILE,  # every other system too (--pairs)
                {k: o["text"] for k, o in outs.items() if k not in ("base", "tuned")},
            )
        ),
    }
    review["human"] = existing_results(out_dir)
    return review
