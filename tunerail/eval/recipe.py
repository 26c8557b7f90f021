"""`tunerail eval`: the fine-tuned model against criteria fixed before training. Reads top to bottom.

1. guard     the test file must be the frozen one (hash in split.json); criteria compared too
2. load      test records, the prompt variant used for the verdict, train + validation for baselines
3. baseline  alternatives fitted on train + validation, chosen by task and answer shape
             (``eval.alternatives``: TF-IDF / MiniLM + logistic regression, CRF / spaCy NER for
             span extraction, nearest neighbour, extractive summaries; ``eval.hosted`` endpoints with
             the same prompt and k-shot examples: ``eval/alternatives/``); the base model with the SAME
             template scored the strongest fair way: zero-shot free generation, zero-shot label
             ranking and k-shot label ranking (classification), k-shot generation otherwise
4. tuned     the base model + adapter; classification answers by label-constrained decoding (the
             verdict) and by free generation (reported beside it), see ``eval.decoding``
5. metrics   task metrics with bootstrap 95 % CIs; paired gain over every baseline
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
from tunerail.errors import Problem, TunerailError
from tunerail.eval import generate as G
from tunerail import stats as S
from tunerail.eval.alternatives import AlternativesRun, Fitted, for_eval, slow_findings
from tunerail.eval.frozen import check_frozen
from tunerail import tasks as T
from tunerail.store import Store
from tunerail.store.checks import check_adapter
from tunerail.prompting import pick_template, prompt_for, prompt_hash
from tunerail.scoring import ModelScores, check_metric
from tunerail.eval.verdict import LOWER_IS_BETTER, Verdict, VerdictInputs, decide
from tunerail.findings import Finding
from tunerail.io import check_out_dir

ProgressFn = Callable[[str, int, int], None]


@dataclass
class EvalResult:
    """What `tunerail eval` prints and writes; ``to_dict()`` is report.json."""

    verdict: Verdict
    findings: list[Finding]
    task: str
    metric: str
    metrics: dict[str, dict[str, dict[str, Any]]]  # model -> metric -> Estimate dict
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
    baselines: list[dict[str, Any]] = field(default_factory=list)  # every baseline, side by side (failed alternatives too)
    alternatives: dict[str, Any] = field(default_factory=dict)  # answer shape, failed alternatives, fit seconds
    reference: str | None = None  # what ``improvement`` is measured against
    training: dict[str, Any] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    rejected_rows: int = 0
    report_html: str | None = None
    report_json: str | None = None

    @property
    def ready(self) -> bool:
        return self.verdict == Verdict.READY

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


def evaluate(
    config: TunerailConfig,
    *,
    test_data: str | Path | Sequence[Record],
    adapter_dir: str | Path | None = None,
    base_model: str | None = None,
    out_dir: str | Path,
    train_json: str | Path | None = None,
    split_json: str | Path | None = None,
    doctor_findings: Sequence[Finding] | None = None,
    leakage_findings: Sequence[Finding] | None = None,
    progress: ProgressFn | None = None,
    few_shot_data: str | Path | Sequence[Record] | None = None,
    lineage: dict[str, Any] | None = None,
    prompt_comparison: dict[str, Any] | None = None,
    cache_dir: str | Path | None = "default",
    train_data: str | Path | Sequence[Record] | None = None,
    validation_data: str | Path | Sequence[Record] | None = None,
    allow_changed_adapter: bool = False,
) -> EvalResult:
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
    train_data, validation_data : the training splits; the alternatives (``eval.alternatives``) are
        fitted on both (without them: warning EVL051), and k-shot examples come from ``few_shot_data``
        or else ``train_data``.
    allow_changed_adapter : evaluate an adapter whose files differ from the checkpoint its run
        recorded in the store (default: refused, exit 2); recorded in ``lineage.adapter_check``.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ev = config.eval
    base_name = base_model or config.model.base
    out_dir = check_out_dir(out_dir)  # before any model runs
    if cache_dir == "default":
        from tunerail.models import cache_root

        cache_dir = cache_root() / "eval"
    cache = Path(cache_dir) if (cache_dir is not None and ev.cache) else None

    cache_mark = len(G.CACHE_LOG)  # this evaluation's cache lookups are the log's tail

    # 1. guard ---------------------------------------------------------------------------
    test_path = Path(test_data) if isinstance(test_data, (str, Path)) else None
    store = Store(config.resolve(config.store.path) or config.store.path)  # the authority on what was frozen and trained
    frozen = check_frozen(test_path, split_json, config.criteria_hash(), store)
    adapter_check = check_adapter(adapter_dir, store, allow_changed_adapter)

    # 2. load ----------------------------------------------------------------------------
    records, rejected = _load(config, test_data)
    template = pick_template(config)
    task = _task_of(config, records)
    refs = [r.completion for r in records]
    train_records = _load(config, train_data)[0] if train_data is not None else []
    val_records = _load(config, validation_data)[0] if validation_data is not None else []
    # the label set is the task's (train + test), so constrained decoding and ranking do not learn
    # from the test file which labels to leave out
    labels = sorted({r.label for r in [*records, *train_records, *val_records] if r.label is not None}) if task == "classification" else []
    check_metric(task, config.criteria.metric, ev.label_ranking)
    shot_pool = _load(config, few_shot_data)[0] if few_shot_data is not None else train_records
    judge_client = None
    if ev.judge.enabled and adapter_dir is not None:  # a misconfigured judge fails before any model runs
        from tunerail.eval.judge import make_client

        judge_client = make_client(ev.judge)
    metric = config.criteria.metric
    n = len(records)

    # 3a. alternatives (seconds, before any LLM runs) ---------------------------------------------
    t = time.perf_counter()
    alts = for_eval(config, task, records, train_records if train_data is not None else None, val_records, cache, shot_pool)
    shots = alts.shots  # the base model's k-shot examples (k from eval.few_shot, else the registry's for the shape)
    timings["cheap_baselines_s"] = time.perf_counter() - t

    # 3b-4. LLM inference --------------------------------------------------------------------------
    base_lm = G.load_model(base_name)
    prompts = [prompt_for(base_lm.tokenizer, r, template) for r in records]
    max_new = _max_new_tokens(config, task, base_lm.tokenizer, labels)
    run = _Runner(cache, prompts, refs, labels, ev, max_new, progress, timings)
    want_ppl = ev.perplexity or metric == "perplexity"
    outs: dict[str, dict[str, Any]] = {"base": run.outputs("base", base_lm, perplexity=want_ppl)}
    few_run = None
    if shots:
        few_prompts = [prompt_for(base_lm.tokenizer, r, template, shots) for r in records]
        few_run = _Runner(cache, few_prompts, refs, labels, ev, max_new, progress, timings)
    if labels:
        outs["base_ranked"] = {"text": run.ranked("base", base_lm), **_ppl_of(outs["base"])}
        if few_run is not None:
            outs["base_few_shot_ranked"] = {"text": few_run.ranked("base_few_shot", base_lm)}
    elif few_run is not None:
        outs["base_few_shot"] = few_run.outputs("base_few_shot", base_lm, perplexity=False)
    tuned_lm = G.load_model(base_name, adapter_dir) if adapter_dir is not None else base_lm
    constrained = bool(labels) and ev.decoding != "free"
    if adapter_dir is None:
        free_out = outs["base"]
    elif constrained and ev.decoding == "constrained":
        free_out = None
    else:
        free_out = run.outputs("tuned", tuned_lm, perplexity=want_ppl)
    if constrained:
        tuned_ppl = (_ppl_of(free_out) if free_out is not None else run.perplexity("tuned", tuned_lm)) if want_ppl else {}
        outs["tuned"] = {"text": run.constrained("tuned", tuned_lm), **tuned_ppl}
        if free_out is not None and "ranked" in free_out:
            outs["tuned"]["ranked"] = free_out["ranked"]
        if free_out is not None and adapter_dir is not None:
            outs["tuned_free"] = free_out
    else:
        outs["tuned"] = free_out

    # 5. metrics ---------------------------------------------------------------------------
    t = time.perf_counter()
    scored = {name: T.score_output(task, refs, o, labels) for name, o in outs.items()}
    for b in alts.scored:
        scored[b.name] = T.score(task, refs, b.predictions, labels)
    metrics_out = {m: _estimates(s, n, ev.bootstrap) for m, s in scored.items()}
    same = {name for name, o in outs.items() if name != "tuned" and o is outs["tuned"]}
    baselines = _baseline_table(scored, metrics_out, metric, n, ev.bootstrap, alts.fitted, labels, shots, same)
    reference = _reference(baselines, metric, config.criteria.baseline)
    improvement, significance = _compare(scored["tuned"], scored[reference], metric, n, ev.bootstrap, task)
    significance["reference"] = reference
    timings["metrics_s"] = time.perf_counter() - t

    # 6. forgetting --------------------------------------------------------------------------
    forgetting = None
    if ev.forgetting and adapter_dir is not None:
        from tunerail.eval import forgetting as F

        t = time.perf_counter()
        suite = F.load_suite()
        fb, _ = G.cached(
            cache,
            G.cache_key("forget", base_lm.fingerprint, G.data_hash([r["id"] for r in suite])),
            lambda: _suite_dict(F.run_suite(base_lm, suite, batch_size=ev.batch_size, progress=progress)),
        )
        ft, _ = G.cached(
            cache,
            G.cache_key("forget", tuned_lm.fingerprint, G.data_hash([r["id"] for r in suite])),
            lambda: _suite_dict(F.run_suite(tuned_lm, suite, batch_size=ev.batch_size, progress=progress)),
        )
        forgetting = F.compare(_suite_obj(fb), _suite_obj(ft), budget=config.criteria.max_forgetting, resamples=ev.bootstrap).to_dict()
        timings["forgetting_s"] = time.perf_counter() - t

    # 7. judge -------------------------------------------------------------------------------
    judge = None
    if judge_client is not None:
        import random

        from tunerail.eval.judge import pairwise_judge

        t = time.perf_counter()
        picked = sorted(random.Random(config.split.seed).sample(range(n), min(ev.judge.max_pairs, n)))
        judge = pairwise_judge(
            judge_client,
            ev.judge.rubric,
            [records[i].prompt for i in picked],
            [refs[i] for i in picked],
            [outs["base"]["text"][i] for i in picked],
            [outs["tuned"]["text"][i] for i in picked],
        ).to_dict()
        judge["rows"] = picked
        timings["judge_s"] = time.perf_counter() - t

    # 8. review ------------------------------------------------------------------------------
    from tunerail import review as R

    rows = [
        R.ReviewRow(r.index, r.line, r.prompt, ref, b, tu, float(bs), float(ts), r.label)
        for r, ref, b, tu, bs, ts in zip(
            records, refs, outs["base"]["text"], outs["tuned"]["text"], scored["base"].primary, scored["tuned"].primary
        )
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    export = R.export_for_review(R.side_by_side(rows, max(ev.review_samples, 1), seed=config.split.seed), out_dir / "review.csv")
    review = {
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
    from tunerail.review.results import existing_results

    review["human"] = existing_results(out_dir)

    # 9. verdict -----------------------------------------------------------------------------
    classification = None
    per_class = None
    unmatched = None
    if task == "classification":
        classification = {m: s.details["report"] for m, s in scored.items()}
        per_class = classification["tuned"]["per_class"]
        free_report = classification.get("tuned_free", classification["tuned"])
        unmatched = free_report["unmatched"] / n if n else None
    ref_row = next(b for b in baselines if b["name"] == reference)
    verdict, findings = decide(
        config.criteria,
        VerdictInputs(
            metric=metric,
            tuned=metrics_out["tuned"],
            base=metrics_out["base"],
            improvement=improvement,
            per_class=per_class,
            forgetting=forgetting,
            forgetting_enabled=ev.forgetting,
            has_adapter=adapter_dir is not None,
            criteria_state=frozen["criteria_state"],
            doctor_findings=list(doctor_findings or []),
            leakage_findings=list(leakage_findings or []),
            judge=judge,
            unmatched_rate=unmatched,
            rejected_rows=len(rejected),
            baselines=[b for b in baselines if b.get("gain") is not None],
            reference=reference,
            reference_label=ref_row["label"],
            baselines_skipped=alts.skipped,
            baselines_failed=[_failed_row(f) for f in alts.failed],
            constrained=constrained,
            human=review["human"],
        ),
    )
    findings += slow_findings(alts.fitted, time.perf_counter() - t0)
    timings["total_s"] = time.perf_counter() - t0
    result = EvalResult(
        verdict=verdict,
        findings=findings,
        task=task,
        metric=metric,
        metrics=metrics_out,
        improvement=improvement,
        significance=significance,
        prompt={
            "version": template.version,
            "hash": prompt_hash(template),
            "system": template.system,
            "template": template.template,
            "few_shot": len(shots),
            "few_shot_requested": ev.few_shot,
            "max_new_tokens": max_new,
            "few_shot_hash": prompt_hash(template, shots) if shots else None,
            "decoding": ev.decoding if labels else "free",
        },
        baselines=baselines,
        alternatives=_alternatives_summary(alts),
        reference=reference,
        criteria={
            **config.criteria.model_dump(mode="json"),
            "hash": config.criteria_hash(),
            "rule": ("95 % CI lower bound" if config.criteria.decision == "ci" else "point estimate"),
        },
        frozen=frozen,
        classification=classification,
        forgetting=forgetting,
        judge=judge,
        review=review,
        prompt_comparison=prompt_comparison,
        training=_read_training(train_json),
        lineage={
            "base_model": base_name,
            "base_fingerprint": base_lm.fingerprint,
            "adapter_dir": str(adapter_dir) if adapter_dir else None,
            "tuned_fingerprint": tuned_lm.fingerprint,
            "test_data": str(test_path) if test_path else None,
            "split_json": frozen.get("split_json") or (str(split_json) if split_json else None),
            "eval_cache": G.cache_summary(G.CACHE_LOG[cache_mark:]),
            "adapter_check": adapter_check,
            **(lineage or {}),
        },
        timings={k: round(v, 2) for k, v in timings.items()},
        rows=n,
        rejected_rows=len(rejected),
    )
    from tunerail.eval.report import write_eval_report

    write_eval_report(result, out_dir)
    return result


# --- prompt variants ----------------------------------------------------------------------


def compare_prompts(
    config: TunerailConfig,
    validation_data: str | Path | Sequence[Record],
    *,
    adapter_dir: str | Path | None = None,
    base_model: str | None = None,
    progress: ProgressFn | None = None,
    limit: int | None = None,
    cache_dir: str | Path | None = "default",
) -> dict[str, Any]:
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
        outs = _Runner(
            Path(cache_dir) if cache_dir and config.eval.cache else None, prompts, refs, labels, config.eval, max_new, progress, {}
        ).outputs(f"prompt-{template.version}", lm)
        scores = T.score_output(task, refs, outs, labels)
        est = S.bootstrap_statistic(scores.statistic(metric), len(records), resamples=config.eval.bootstrap)
        variants.append({"version": template.version, "hash": prompt_hash(template), **est.to_dict()})
    lower = metric in LOWER_IS_BETTER
    best = min(variants, key=lambda v: v["value"]) if lower else max(variants, key=lambda v: v["value"])
    return {
        "metric": metric,
        "split": "validation",
        "rows": len(records),
        "variants": variants,
        "chosen": best["version"],
        "model": lm.name,
    }


# --- helpers ------------------------------------------------------------------------------


class _Runner:
    """Generate (and optionally rank) for one prompt set, through the on-disk cache."""

    def __init__(
        self,
        cache: Path | None,
        prompts: list[str],
        refs: list[str],
        labels: list[str],
        ev: Any,
        max_new: int,
        progress: ProgressFn | None,
        timings: dict[str, float],
    ):
        self.cache, self.prompts, self.refs, self.labels, self.ev = cache, prompts, refs, labels, ev
        self.max_new, self.progress, self.timings = max_new, progress, timings
        self.data = G.data_hash(prompts)

    def outputs(self, name: str, lm: G.LoadedModel, perplexity: bool = True) -> dict[str, Any]:
        """Free generation (+ label ranking when ``eval.label_ranking``) and reference perplexity."""
        t = time.perf_counter()
        gen, hit = G.cached(
            self.cache,
            G.cache_key("gen", lm.fingerprint, self.data, self.max_new),
            lambda: G.generate(lm, self.prompts, max_new_tokens=self.max_new, batch_size=self.ev.batch_size, progress=self.progress),
            inputs={"stage": "gen", "model": lm.fingerprint, "prompts": self.data, "max_new_tokens": self.max_new},
        )
        self.timings[f"{name}_generate_s"] = time.perf_counter() - t
        out: dict[str, Any] = {"text": gen, "cached": hit}
        if self.labels and self.ev.label_ranking:
            out["ranked"] = self.ranked(name, lm)
        if perplexity:
            out.update(self.perplexity(name, lm))
        return out

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


def _ppl_of(out: dict[str, Any]) -> dict[str, Any]:
    return {k: out[k] for k in ("ref_logp", "ref_tokens") if k in out}


# --- baselines ----------------------------------------------------------------------------

BASE_LABELS = {
    "base": "base model, zero-shot free generation",
    "base_ranked": "base model, zero-shot label ranking",
    "base_few_shot_ranked": "base model, {k}-shot label ranking",
    "base_few_shot": "base model, {k}-shot free generation",
    "tuned_free": "fine-tuned model, free generation",
}


def _baseline_table(
    scored: dict[str, ModelScores],
    metrics_out: dict[str, Any],
    metric: str,
    n: int,
    resamples: int,
    cheap: Sequence[Fitted],
    labels: Sequence[str],
    shots: Sequence[Any],
    same_as_tuned: set[str],
) -> list[dict[str, Any]]:
    """Every baseline on the main metric with the paired gain of the tuned model over it; failed alternatives last."""
    rows = []
    cheap_by_name = {b.name: b for b in cheap}
    for name in scored:
        if name == "tuned":
            continue
        kind = cheap_by_name[name].kind if name in cheap_by_name else ("tuned" if name == "tuned_free" else "llm")
        label = cheap_by_name[name].label if name in cheap_by_name else BASE_LABELS.get(name, name).format(k=len(shots))
        est = metrics_out[name].get(metric)
        gain = None
        if est is not None and kind != "tuned" and name not in same_as_tuned:
            gain, _ = _compare(scored["tuned"], scored[name], metric, n, resamples, "")
        row = {"name": name, "label": label, "kind": kind, "estimate": est, "gain": gain}
        if name in cheap_by_name:
            b = cheap_by_name[name]
            row.update(library=b.library, ship=b.ship, seconds=round(b.seconds, 2), details=b.details)
        if labels:
            row["unmatched"] = scored[name].details["report"]["unmatched"]
        rows.append(row)
    return rows + [{**_failed_row(b), "kind": b.kind, "estimate": None, "gain": None} for b in cheap if b.error is not None]


def _failed_row(b: Fitted) -> dict[str, Any]:
    return {"name": b.name, "label": b.label, "library": b.library, "error": b.error, "seconds": round(b.seconds, 2)}


def _alternatives_summary(alts: AlternativesRun) -> dict[str, Any]:
    """What report.json records about the alternatives stage beside the table: shape, skips, failures, fit time."""
    return {
        "shape": alts.shape,
        "skipped": alts.skipped,
        "fitted": [b.name for b in alts.scored],
        "failed": [_failed_row(b) for b in alts.failed],
        "fit_seconds": round(sum(float(b.details.get("fit_seconds", b.seconds)) for b in alts.fitted if b.kind == "cheap"), 2),
        "hosted_seconds": round(sum(b.seconds for b in alts.fitted if b.kind == "hosted"), 2),
        "budget_s": None if alts.budget_s is None else round(alts.budget_s, 1),
        "llm_rows": alts.llm_rows,  # rows the LLM stage computed that the registry lists as alternatives (base_few_shot)
    }


def _reference(baselines: Sequence[dict[str, Any]], metric: str, which: str) -> str:
    """The baseline ``min_improvement`` is measured against: the strongest on the main metric."""
    pool = [b for b in baselines if b["gain"] is not None and (which == "strongest" or b["kind"] == "llm")]
    if not pool:
        return "base"
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return max(pool, key=lambda b: (sign * b["estimate"]["value"], b["name"] == "base"))["name"]


def _estimates(s: ModelScores, n: int, resamples: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, arr in s.per_example.items():
        out[name] = S.mean_ci(arr, resamples=resamples).to_dict()  # Wilson for 0/1 scores (accuracy...)
    for name, fn in s.corpus.items():
        out[name] = S.bootstrap_statistic(fn, n, resamples=resamples).to_dict()
    return out


def _compare(
    tuned: ModelScores, base: ModelScores, metric: str, n: int, resamples: int, task: str
) -> tuple[dict[str, Any], dict[str, Any]]:
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
    from tunerail.data.loaders import load_usable_records

    return load_usable_records(
        data, config, missing="test data not found", missing_fix="pass --test PATH (test.jsonl from `tunerail split`)"
    )


def _task_of(config: TunerailConfig, records: Sequence[Record]) -> str:
    T.check_labels(config.task, records)
    return config.task


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
        raise TunerailError(
            Problem("train.json not found", file=str(path), fix="pass the train.json written by `tunerail train`")
        ) from None
    except ValueError as exc:
        raise TunerailError(Problem(f"train.json is not valid JSON ({exc})", file=str(path))) from None
    # the keys of TrainResult.to_dict(): ``stopped_reason`` (completed | early_stopping | divergence | budget), ``actual.seconds``
    out: dict[str, Any] = {"history": data.get("history", []), "path": str(path)}
    out.update({k: data[k] for k in ("stopped_reason", "best_step", "run_id") if k in data})
    if "stopped_reason" in data:
        out["stopped_early"] = data["stopped_reason"] == "early_stopping"
    if isinstance(data.get("actual"), dict) and "seconds" in data["actual"]:
        out["wall_s"] = data["actual"]["seconds"]
    return out
