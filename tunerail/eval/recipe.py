"""`tunerail eval`: the fine-tuned model against criteria fixed before training. Reads top to bottom.

1. guard     the test file must be the frozen one (hash in split.json); criteria compared too
2. load      test records, the prompt variant used for the verdict
3. baseline  the base model with the SAME template, always (zero-shot, optional few-shot)
4. tuned     the base model + adapter
5. metrics   task metrics with bootstrap 95 % CIs; improvement with a paired test
6. forgetting general-capability suite on both models
7. judge     optional LLM-as-judge, pairwise, both orders
8. review    side-by-side sample, worst cases, slices, an export for human raters
9. verdict   READY / NOT READY with one finding per reason; report.html + report.json

Cost on 2 CPU cores with SmolLM2-135M: see bench/eval_speed.py (generation is the bulk;
outputs are cached by model, data and prompt hash so a re-run is nearly free).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tunerail.config import TunerailConfig
from tunerail.data.records import Record
from tunerail.errors import DataError, Problem, TunerailError
from tunerail.eval import generate as G
from tunerail import stats as S
from tunerail.eval.frozen import check_frozen
from tunerail.prompting import pick_template, prompt_for, prompt_hash
from tunerail.eval.scoring import ModelScores, add_perplexity, check_metric, score_classification, score_extraction, score_generation
from tunerail.eval.verdict import LOWER_IS_BETTER, VerdictInputs, decide
from tunerail.findings import Finding

ProgressFn = Callable[[str, int, int], None]


@dataclass
class EvalResult:
    """What `tunerail eval` prints and writes; ``to_dict()`` is report.json."""

    verdict: str
    findings: list[Finding]
    task: str
    metric: str
    metrics: dict[str, dict[str, dict[str, Any]]]   # model -> metric -> Estimate dict
    improvement: dict[str, Any] | None
    significance: dict[str, Any] | None
    prompt: dict[str, Any]
    criteria: dict[str, Any]
    frozen: dict[str, Any]
    classification: dict[str, Any] | None = None
    forgetting: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None
    review: dict[str, Any] = field(default_factory=dict)
    prompt_comparison: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    rejected_rows: int = 0
    report_html: str | None = None
    report_json: str | None = None

    @property
    def ready(self) -> bool:
        return self.verdict == "READY"

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


def evaluate(config: TunerailConfig, *, test_data: str | Path | Sequence[Record], adapter_dir: str | Path | None = None,
             base_model: str | None = None, out_dir: str | Path, train_json: str | Path | None = None,
             split_json: str | Path | None = None, doctor_findings: Sequence[Finding] | None = None,
             leakage_findings: Sequence[Finding] | None = None, progress: ProgressFn | None = None,
             few_shot_data: str | Path | Sequence[Record] | None = None, lineage: dict[str, Any] | None = None,
             prompt_comparison: dict[str, Any] | None = None, cache_dir: str | Path | None = "default") -> EvalResult:
    """Evaluate base and fine-tuned model on the frozen test set and decide READY / NOT READY.

    Parameters
    ----------
    test_data : the frozen test file (``test.jsonl`` from the split) or records already loaded.
    adapter_dir : peft adapter folder from `tunerail train`; None evaluates the base model alone.
    split_json : the split manifest; with it, a changed test file is refused (GuardrailError,
        exit 2) and criteria edited after the split are flagged (verdict NOT READY).
    train_json : the training run record; its ``history`` becomes the loss-curve plot.
    doctor_findings, leakage_findings : unresolved errors there make the verdict NOT READY.
    cache_dir : where outputs are cached ("default": ~/.cache/tunerail/eval; None: no cache).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ev = config.eval
    base_name = base_model or config.model.base
    out_dir = Path(out_dir)
    if cache_dir == "default":
        from tunerail.models import cache_root

        cache_dir = cache_root() / "eval"
    cache = Path(cache_dir) if (cache_dir is not None and ev.cache) else None

    # 1. guard ---------------------------------------------------------------------------
    test_path = Path(test_data) if isinstance(test_data, (str, Path)) else None
    frozen = check_frozen(test_path, split_json, config.criteria_hash())

    # 2. load ----------------------------------------------------------------------------
    records, rejected = _load(config, test_data)
    template = pick_template(config)
    task = _task_of(config, records)
    refs = [r.completion for r in records]
    labels = sorted({r.label for r in records if r.label is not None}) if task == "classification" else []
    check_metric(task, config.criteria.metric, ev.label_ranking)
    shots = _shots(config, few_shot_data)
    judge_client = None
    if ev.judge.enabled and adapter_dir is not None:  # a misconfigured judge fails before any model runs
        from tunerail.eval.judge import make_client

        judge_client = make_client(ev.judge)

    # 3-4. inference ------------------------------------------------------------------------
    base_lm = G.load_model(base_name)
    prompts = [prompt_for(base_lm.tokenizer, r, template) for r in records]
    max_new = _max_new_tokens(config, task, base_lm.tokenizer, labels)
    run = _Runner(cache, prompts, refs, labels, ev, max_new, progress, timings)
    base_out = run.outputs("base", base_lm)
    few_out = None
    if shots:
        few_prompts = [prompt_for(base_lm.tokenizer, r, template, shots) for r in records]
        few_out = _Runner(cache, few_prompts, refs, labels, ev, max_new, progress, timings).outputs("base_few_shot", base_lm)
    tuned_lm = G.load_model(base_name, adapter_dir) if adapter_dir is not None else base_lm
    tuned_out = run.outputs("tuned", tuned_lm) if adapter_dir is not None else base_out

    # 5. metrics ---------------------------------------------------------------------------
    t = time.perf_counter()
    scored = {"base": _score(task, refs, base_out, labels), "tuned": _score(task, refs, tuned_out, labels)}
    if few_out is not None:
        scored["base_few_shot"] = _score(task, refs, few_out, labels)
    metric = config.criteria.metric
    n = len(records)
    metrics_out = {m: _estimates(s, n, ev.bootstrap) for m, s in scored.items()}
    improvement, significance = _compare(scored["tuned"], scored["base"], metric, n, ev.bootstrap, task)
    timings["metrics_s"] = time.perf_counter() - t

    # 6. forgetting --------------------------------------------------------------------------
    forgetting = None
    if ev.forgetting and adapter_dir is not None:
        from tunerail.eval import forgetting as F

        t = time.perf_counter()
        suite = F.load_suite()
        fb, _ = G.cached(cache, G.cache_key("forget", base_lm.fingerprint, G.data_hash([r["id"] for r in suite])),
                         lambda: _suite_dict(F.run_suite(base_lm, suite, batch_size=ev.batch_size, progress=progress)))
        ft, _ = G.cached(cache, G.cache_key("forget", tuned_lm.fingerprint, G.data_hash([r["id"] for r in suite])),
                         lambda: _suite_dict(F.run_suite(tuned_lm, suite, batch_size=ev.batch_size, progress=progress)))
        forgetting = F.compare(_suite_obj(fb), _suite_obj(ft), budget=config.criteria.max_forgetting,
                               resamples=ev.bootstrap).to_dict()
        timings["forgetting_s"] = time.perf_counter() - t

    # 7. judge -------------------------------------------------------------------------------
    judge = None
    if judge_client is not None:
        import random

        from tunerail.eval.judge import pairwise_judge

        t = time.perf_counter()
        picked = sorted(random.Random(config.split.seed).sample(range(n), min(ev.judge.max_pairs, n)))
        judge = pairwise_judge(judge_client, ev.judge.rubric, [records[i].prompt for i in picked],
                               [refs[i] for i in picked], [base_out["text"][i] for i in picked],
                               [tuned_out["text"][i] for i in picked]).to_dict()
        judge["rows"] = picked
        timings["judge_s"] = time.perf_counter() - t

    # 8. review ------------------------------------------------------------------------------
    from tunerail import review as R

    rows = [R.ReviewRow(r.index, r.line, r.prompt, ref, b, tu, float(bs), float(ts), r.label)
            for r, ref, b, tu, bs, ts in zip(records, refs, base_out["text"], tuned_out["text"], scored["base"].primary,
                                             scored["tuned"].primary)]
    out_dir.mkdir(parents=True, exist_ok=True)
    export = R.export_for_review(R.side_by_side(rows, max(ev.review_samples, 1), seed=config.split.seed),
                                 out_dir / "review.csv")
    review = {"samples": [r.to_dict() for r in R.side_by_side(rows, ev.review_samples, seed=config.split.seed)],
              "worst": [r.to_dict() for r in R.worst_cases(rows, 10)], "slices": R.slices(rows),
              "export": str(export), "key": str(R.key_path(export)),
              "items": str(R.write_items(rows, out_dir / R.ITEMS_FILE,
                                         {"base_few_shot": few_out["text"]} if few_out is not None else None))}
    from tunerail.review.session import existing_results

    review["human"] = existing_results(out_dir)

    # 9. verdict -----------------------------------------------------------------------------
    classification = None
    per_class = None
    unmatched = None
    if task == "classification":
        classification = {m: s.details["report"] for m, s in scored.items()}
        per_class = classification["tuned"]["per_class"]
        unmatched = classification["tuned"]["unmatched"] / n if n else None
    verdict, findings = decide(config.criteria, VerdictInputs(
        metric=metric, tuned=metrics_out["tuned"], base=metrics_out["base"], improvement=improvement,
        per_class=per_class, forgetting=forgetting, forgetting_enabled=ev.forgetting, has_adapter=adapter_dir is not None,
        criteria_state=frozen["criteria_state"], doctor_findings=list(doctor_findings or []),
        leakage_findings=list(leakage_findings or []), judge=judge, unmatched_rate=unmatched,
        rejected_rows=len(rejected), human=review["human"]))
    timings["total_s"] = time.perf_counter() - t0
    result = EvalResult(
        verdict=verdict, findings=findings, task=task, metric=metric, metrics=metrics_out, improvement=improvement,
        significance=significance,
        prompt={"version": template.version, "hash": prompt_hash(template), "system": template.system,
                "template": template.template, "few_shot": len(shots), "max_new_tokens": max_new},
        criteria={**config.criteria.model_dump(mode="json"), "hash": config.criteria_hash()}, frozen=frozen,
        classification=classification, forgetting=forgetting, judge=judge, review=review,
        prompt_comparison=prompt_comparison, training=_read_training(train_json),
        lineage={"base_model": base_name, "base_fingerprint": base_lm.fingerprint,
                 "adapter_dir": str(adapter_dir) if adapter_dir else None, "tuned_fingerprint": tuned_lm.fingerprint,
                 "test_data": str(test_path) if test_path else None, "split_json": str(split_json) if split_json else None,
                 **(lineage or {})},
        timings={k: round(v, 2) for k, v in timings.items()}, rows=n, rejected_rows=len(rejected))
    from tunerail.eval.report import write_eval_report

    write_eval_report(result, out_dir)
    return result


# --- prompt variants ----------------------------------------------------------------------


def compare_prompts(config: TunerailConfig, validation_data: str | Path | Sequence[Record], *,
                    adapter_dir: str | Path | None = None, base_model: str | None = None,
                    progress: ProgressFn | None = None, limit: int | None = None,
                    cache_dir: str | Path | None = "default") -> dict[str, Any]:
    """Evaluate every prompt variant on the VALIDATION set (never the test set) with the main metric.

    Returns ``{"metric", "variants": [{version, hash, value, low, high}], "chosen": version}``;
    pass ``chosen`` as ``eval.prompt_version`` so the verdict records which variant it used.
    """
    records, _ = _load(config, validation_data)
    if limit:
        records = records[:limit]
    task = _task_of(config, records)
    check_metric(task, config.criteria.metric, config.eval.label_ranking)
    refs = [r.completion for r in records]
    labels = sorted({r.label for r in records if r.label is not None}) if task == "classification" else []
    lm = G.load_model(base_model or config.model.base, adapter_dir)
    if cache_dir == "default":
        from tunerail.models import cache_root

        cache_dir = cache_root() / "eval"
    max_new = _max_new_tokens(config, task, lm.tokenizer, labels)
    metric = config.criteria.metric
    variants = []
    for template in config.prompts:
        prompts = [prompt_for(lm.tokenizer, r, template) for r in records]
        outs = _Runner(Path(cache_dir) if cache_dir and config.eval.cache else None, prompts, refs, labels, config.eval,
                       max_new, progress, {}).outputs(f"prompt-{template.version}", lm)
        scores = _score(task, refs, outs, labels)
        est = S.bootstrap_statistic(scores.statistic(metric), len(records), resamples=config.eval.bootstrap)
        variants.append({"version": template.version, "hash": prompt_hash(template), **est.to_dict()})
    lower = metric in LOWER_IS_BETTER
    best = min(variants, key=lambda v: v["value"]) if lower else max(variants, key=lambda v: v["value"])
    return {"metric": metric, "split": "validation", "rows": len(records), "variants": variants, "chosen": best["version"],
            "model": lm.name}


# --- helpers ------------------------------------------------------------------------------


class _Runner:
    """Generate (and optionally rank) for one prompt set, through the on-disk cache."""

    def __init__(self, cache: Path | None, prompts: list[str], refs: list[str], labels: list[str], ev: Any,
                 max_new: int, progress: ProgressFn | None, timings: dict[str, float]):
        self.cache, self.prompts, self.refs, self.labels, self.ev = cache, prompts, refs, labels, ev
        self.max_new, self.progress, self.timings = max_new, progress, timings
        self.data = G.data_hash(prompts)

    def outputs(self, name: str, lm: G.LoadedModel) -> dict[str, Any]:
        t = time.perf_counter()
        gen, hit = G.cached(self.cache, G.cache_key("gen", lm.fingerprint, self.data, self.max_new),
                            lambda: G.generate(lm, self.prompts, max_new_tokens=self.max_new,
                                               batch_size=self.ev.batch_size, progress=self.progress))
        self.timings[f"{name}_generate_s"] = time.perf_counter() - t
        out: dict[str, Any] = {"text": gen, "cached": hit}
        if self.labels and self.ev.label_ranking:
            t = time.perf_counter()
            out["ranked"], _ = G.cached(self.cache, G.cache_key("rank", lm.fingerprint, self.data, self.labels,
                                                                self.ev.length_normalize),
                                        lambda: G.rank_labels(lm, self.prompts, self.labels, batch_size=self.ev.batch_size,
                                                              length_normalize=self.ev.length_normalize,
                                                              progress=self.progress))
            self.timings[f"{name}_rank_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ppl, _ = G.cached(self.cache, G.cache_key("ppl", lm.fingerprint, self.data, G.data_hash(self.refs)),
                          lambda: list(G.score_answers(lm, self.prompts, self.refs, batch_size=self.ev.batch_size,
                                                       progress=self.progress, stage="perplexity")))
        out["ref_logp"], out["ref_tokens"] = np.asarray(ppl[0]), np.asarray(ppl[1])
        self.timings[f"{name}_perplexity_s"] = time.perf_counter() - t
        return out


def _score(task: str, refs: list[str], out: dict[str, Any], labels: list[str]) -> ModelScores:
    if task == "classification":
        s = score_classification(refs, out["text"], labels, ranked=out.get("ranked"))
    elif task == "extraction":
        s = score_extraction(refs, out["text"])
    else:
        s = score_generation(refs, out["text"])
    add_perplexity(s, out["ref_logp"], out["ref_tokens"])
    return s


def _estimates(s: ModelScores, n: int, resamples: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, arr in s.per_example.items():
        out[name] = S.bootstrap_ci(arr, resamples=resamples).to_dict()
    for name, fn in s.corpus.items():
        out[name] = S.bootstrap_statistic(fn, n, resamples=resamples).to_dict()
    return out


def _compare(tuned: ModelScores, base: ModelScores, metric: str, n: int, resamples: int,
             task: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Paired improvement on the main metric, and per-metric paired tests for the report."""
    if metric in tuned.per_example:
        imp = S.paired_bootstrap(tuned.per_example[metric], base.per_example[metric], resamples=resamples)
    else:
        imp = S.paired_statistic(tuned.corpus[metric], base.corpus[metric], n, resamples=resamples)
    sig: dict[str, Any] = {"main": imp.to_dict()}
    if task == "classification":
        sig["mcnemar"] = S.mcnemar(tuned.per_example["accuracy"] > 0, base.per_example["accuracy"] > 0)
        if metric == "accuracy":
            imp.extra.update({"p_value": sig["mcnemar"]["p_value"], "test": sig["mcnemar"]["test"]})
    return imp.to_dict(), sig


def _load(config: TunerailConfig, data: str | Path | Sequence[Record]) -> tuple[list[Record], list[Any]]:
    if not isinstance(data, (str, Path)):
        return list(data), []
    from tunerail.data.loaders import load_records

    path = Path(data)
    if not path.exists():
        raise DataError(Problem("test data not found", file=str(path), fix="pass --test PATH (test.jsonl from `tunerail split`)"))
    records, rejected, _ = load_records(path, config.data.format, config.data.columns, config.data.group_column)
    if not records:
        first = rejected[0] if rejected else None
        raise DataError(Problem("no usable rows" + (f" (first problem: {first.reason})" if first else ""), file=str(path),
                                line=first.ref.line if first else None, fix="check data.format and data.columns"))
    return records, rejected


def _task_of(config: TunerailConfig, records: Sequence[Record]) -> str:
    if config.task == "classification" and any(r.label is None for r in records[:50]):
        raise TunerailError(Problem("task is classification but the rows have no label column", field="task",
                                    fix="map the label column (data.columns: {label: ...}) or set task: generation"))
    return config.task


def _shots(config: TunerailConfig, data: str | Path | Sequence[Record] | None) -> list[tuple[str, str]]:
    k = config.eval.few_shot
    if not k or data is None:
        return []
    records, _ = _load(config, data)
    seen, shots = set(), []
    for r in records:  # one example per label first, so a few shots cover several classes
        key = r.label if r.label is not None else len(shots)
        if key not in seen:
            seen.add(key)
            shots.append((r.prompt, r.completion))
        if len(shots) == k:
            break
    return shots


def _max_new_tokens(config: TunerailConfig, task: str, tokenizer: Any, labels: Sequence[str]) -> int:
    """Classification needs only the longest label (+ end token and slack): 3-4x faster than 64."""
    if task == "classification" and labels:
        longest = max(len(tokenizer(lab, add_special_tokens=False)["input_ids"]) for lab in labels)
        return longest + 3
    return config.eval.max_new_tokens


def _suite_dict(s: Any) -> dict[str, Any]:
    return {"answer_nll": s.answer_nll.tolist(), "mc_correct": s.mc_correct.tolist(), "seconds": s.seconds}


def _suite_obj(d: dict[str, Any]) -> Any:
    from tunerail.eval.forgetting import SuiteScores

    return SuiteScores(np.asarray(d["answer_nll"]), np.asarray(d["mc_correct"]), float(d["seconds"]))


def _read_training(train_json: str | Path | None) -> dict[str, Any] | None:
    if train_json is None:
        return None
    import json

    path = Path(train_json)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TunerailError(Problem("train.json not found", file=str(path), fix="pass the train.json written by `tunerail train`")) from None
    except ValueError as exc:
        raise TunerailError(Problem(f"train.json is not valid JSON ({exc})", file=str(path))) from None
    return {"history": data.get("history", []), "path": str(path),
            **{k: data[k] for k in ("stopped_early", "best_step", "wall_s", "run_id") if k in data}}
