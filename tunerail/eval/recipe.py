"""`tunerail eval`: the fine-tuned model against criteria fixed before training. Reads top to bottom.

1. guard     the test file must be the frozen one (hash in split.json); criteria compared too
2. load      test records, the prompt variant used for the verdict, train + validation for baselines
3. baseline  alternatives fitted on train + validation, chosen by task and answer shape
             (``eval.alternatives``: TF-IDF / MiniLM + logistic regression, CRF / spaCy NER for
             span extraction, nearest neighbour, extractive summaries; ``eval.hosted`` endpoints with
             the same prompt and k-shot examples: ``eval/alternatives/``); the base model with the SAME
             template scored the strongest fair way: zero-shot free generation, zero-shot label
             ranking and k-shot label ranking (classification), k-shot generation otherwise
4. tuned     the base model + adapter; classification answers by label-constrained decoding, span
             extraction by span-copy decoding (the verdict), and by free generation (reported beside
             it with the paired difference), see ``eval.decoding``
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
from typing import Any, Sequence

from tunerail import stats as S
from tunerail import tasks as T
from tunerail.config import PromptTemplate, TunerailConfig
from tunerail.data.records import Record, Rejection
from tunerail.eval import compare as C
from tunerail.eval import generate as G
from tunerail.eval.alternatives import AlternativesRun, for_eval, slow_findings
from tunerail.eval.frozen import check_frozen
from tunerail.eval.inputs import EvalInputs, load_rows, metric_of, read_training, task_of
from tunerail.eval.inference import Inference, ProgressFn, Runner, base_outputs, max_new_tokens, tuned_outputs
from tunerail.eval.inference import keyword_guides, span_sources
from tunerail.eval.judge import ChatClient, make_client
from tunerail.eval.report import write_eval_report
from tunerail.eval.stages import forgetting_stage, judge_stage, review_stage
from tunerail.eval.verdict import LOWER_IS_BETTER, Verdict, VerdictInputs, decide
from tunerail.findings import Finding
from tunerail.io import check_out_dir
from tunerail.models import cache_root
from tunerail.prompting import pick_template, prompt_for, prompt_hash
from tunerail.scoring import ModelScores, check_metric
from tunerail.store import Store
from tunerail.store.checks import check_adapter

__all__ = ["EvalInputs", "EvalResult", "compare_prompts", "evaluate", "pick_template", "run_eval"]


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


# size: evaluate: the public API takes each input as a keyword, as `tunerail eval` takes flags; it builds EvalInputs
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
    inputs = EvalInputs(
        test_data=test_data,
        out_dir=out_dir,
        adapter_dir=adapter_dir,
        base_model=base_model,
        train_json=train_json,
        split_json=split_json,
        doctor_findings=doctor_findings,
        leakage_findings=leakage_findings,
        progress=progress,
        few_shot_data=few_shot_data,
        lineage=lineage,
        prompt_comparison=prompt_comparison,
        cache_dir=cache_dir,
        train_data=train_data,
        validation_data=validation_data,
        allow_changed_adapter=allow_changed_adapter,
    )
    return run_eval(config, inputs)


def run_eval(config: TunerailConfig, inputs: EvalInputs) -> EvalResult:
    """The eval recipe, one stage per call: guard + load, alternatives, inference, metrics, extras, verdict."""
    t0 = time.perf_counter()
    prep = _prepare(config, inputs)  # 1-2: nothing runs a model before the guards passed
    alts = _alternatives(config, inputs, prep)  # 3a: seconds, before any LLM runs
    inf = _infer(config, inputs, prep, alts.shape)  # 3b-4
    sc = _metrics(config, prep, inf, alts)  # 5
    extras = _extras(config, inputs, prep, inf)  # 6-7
    review = review_stage(config, prep.records, prep.refs, inf.outs, sc.scored, prep.out_dir)  # 8
    verdict, findings = _decide(config, inputs, prep, sc, alts, inf.constrained, extras, review["human"])  # 9
    findings += slow_findings(alts.fitted, time.perf_counter() - t0, config.eval.alternatives_budget_share)
    prep.timings["total_s"] = time.perf_counter() - t0
    result = EvalResult(
        verdict=verdict,
        findings=findings,
        task=prep.task,
        metric=prep.metric,
        metrics=sc.metrics,
        improvement=sc.improvement,
        significance=sc.significance,
        prompt=_prompt_record(config, prep, inf),
        baselines=sc.baselines,
        alternatives=C.alternatives_summary(alts),
        reference=sc.reference,
        criteria=_criteria_record(config),
        frozen=prep.frozen,
        classification=sc.classification,
        forgetting=extras.forgetting,
        judge=extras.judge,
        review=review,
        prompt_comparison=inputs.prompt_comparison,
        training=read_training(inputs.train_json),
        lineage=_lineage(config, inputs, prep, inf),
        timings={k: round(v, 2) for k, v in prep.timings.items()},
        rows=prep.n,
        rejected_rows=len(prep.rejected),
    )
    write_eval_report(result, prep.out_dir)
    return result


# --- stages -------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """Stages 1-2: the guards passed, the rows loaded, the template, labels and k-shot examples chosen."""

    out_dir: Path
    cache: Path | None
    cache_mark: int  # this evaluation's cache lookups are the tail of G.CACHE_LOG from here
    test_path: Path | None
    frozen: dict[str, Any]
    adapter_check: dict[str, Any]
    records: list[Record]
    rejected: list[Rejection]
    train_records: list[Record] | None  # None: no training split was given
    val_records: list[Record]
    template: PromptTemplate
    task: str
    metric: str
    labels: list[str]
    shot_pool: Sequence[Record] | None  # where the base model's k-shot examples come from (the alternatives stage picks them)
    judge_client: ChatClient | None
    timings: dict[str, float] = field(default_factory=dict)
    shots: list[tuple[str, str]] = field(default_factory=list)  # k from eval.few_shot, else the registry's for the answer shape

    @property
    def refs(self) -> list[str]:
        return [r.completion for r in self.records]

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def groups(self) -> list[str]:
        """Each test row's input: rows that repeat one (a multi-reference test set) are one observation for the CIs."""
        return [r.prompt for r in self.records]


def _prepare(config: TunerailConfig, inputs: EvalInputs) -> _Prepared:
    """1. guard (the frozen test file, criteria, the recorded adapter) and 2. load; a misconfigured judge fails here too."""
    ev = config.eval
    out_dir = check_out_dir(inputs.out_dir)  # before any model runs
    cache_dir = cache_root() / "eval" if inputs.cache_dir == "default" else inputs.cache_dir
    cache_mark = len(G.CACHE_LOG)
    test_path = Path(inputs.test_data) if isinstance(inputs.test_data, (str, Path)) else None
    store = Store(config.resolve(config.store.path) or config.store.path)  # the authority on what was frozen and trained
    frozen = check_frozen(test_path, inputs.split_json, config.criteria_hash(), store)
    adapter_check = check_adapter(inputs.adapter_dir, store, inputs.allow_changed_adapter)
    records, rejected = load_rows(config, inputs.test_data)
    template = pick_template(config)
    task = task_of(config, records)
    train_records = load_rows(config, inputs.train_data)[0] if inputs.train_data is not None else None
    val_records = load_rows(config, inputs.validation_data)[0] if inputs.validation_data is not None else []
    # the label set is the task's (train + test), so constrained decoding and ranking do not learn
    # from the test file which labels to leave out
    every = [*records, *(train_records or []), *val_records]
    labels = sorted({r.label for r in every if r.label is not None}) if task == "classification" else []
    metric = metric_of(config)
    check_metric(task, metric, ev.label_ranking)
    shot_pool = load_rows(config, inputs.few_shot_data)[0] if inputs.few_shot_data is not None else train_records
    judge_client = make_client(ev.judge) if ev.judge.enabled and inputs.adapter_dir is not None else None
    return _Prepared(
        out_dir=out_dir,
        cache=Path(cache_dir) if (cache_dir is not None and ev.cache) else None,
        cache_mark=cache_mark,
        test_path=test_path,
        frozen=frozen,
        adapter_check=adapter_check,
        records=records,
        rejected=rejected,
        train_records=train_records,
        val_records=val_records,
        template=template,
        task=task,
        metric=metric,
        labels=labels,
        shot_pool=shot_pool,
        judge_client=judge_client,
    )


def _alternatives(config: TunerailConfig, inputs: EvalInputs, prep: _Prepared) -> AlternativesRun:
    """3a. What a team would ship instead, fitted on train + validation (``eval.alternatives``)."""
    t = time.perf_counter()
    alts = for_eval(config, prep.task, prep.records, prep.train_records, prep.val_records, prep.cache, prep.shot_pool or ())
    prep.shots = alts.shots
    prep.timings["cheap_baselines_s"] = time.perf_counter() - t
    return alts


def _infer(config: TunerailConfig, inputs: EvalInputs, prep: _Prepared, shape: str | None) -> Inference:
    """3b-4. The base model (zero- and k-shot, the same template) and the tuned model (span copy where ``shape`` is spans), cached."""
    ev = config.eval
    base_lm = G.load_model(inputs.base_model or config.model.base)
    prompts = [prompt_for(base_lm.tokenizer, r, prep.template) for r in prep.records]
    max_new = max_new_tokens(config, prep.task, base_lm.tokenizer, prep.labels)
    run = Runner(prep.cache, prompts, prep.refs, prep.labels, ev, max_new, inputs.progress, prep.timings)
    few_run = None
    if prep.shots:
        few_prompts = [prompt_for(base_lm.tokenizer, r, prep.template, prep.shots) for r in prep.records]
        few_run = Runner(prep.cache, few_prompts, prep.refs, prep.labels, ev, max_new, inputs.progress, prep.timings)
    want_ppl = ev.perplexity or prep.metric == "perplexity"
    keywords = keyword_guides(prep.task, prep.records, ev)
    outs = base_outputs(run, few_run, base_lm, prep.labels, want_ppl, keywords)
    has_adapter = inputs.adapter_dir is not None
    tuned_lm = G.load_model(inputs.base_model or config.model.base, inputs.adapter_dir) if has_adapter else base_lm
    sources = span_sources(prep.task, shape, prep.records)
    decoding = tuned_outputs(run, outs, tuned_lm, ev, has_adapter, want_ppl, sources, keywords)
    return Inference(base_lm, tuned_lm, outs, max_new, decoding)


@dataclass
class _Scores:
    """Stage 5: every model's scores and estimates, the baseline table and the gain over the reference."""

    scored: dict[str, ModelScores]
    metrics: dict[str, dict[str, dict[str, Any]]]
    baselines: list[dict[str, Any]]
    reference: str
    improvement: dict[str, Any]
    significance: dict[str, Any]
    classification: dict[str, Any] | None


def _metrics(config: TunerailConfig, prep: _Prepared, inf: Inference, alts: AlternativesRun) -> _Scores:
    """5. Task metrics with 95 % CIs for every model and alternative; the paired gain over each baseline."""
    t = time.perf_counter()
    ev, task, metric, n = config.eval, prep.task, prep.metric, prep.n
    scored = {name: T.score_output(task, prep.refs, o, prep.labels) for name, o in inf.outs.items()}
    for b in alts.scored:
        scored[b.name] = T.score(task, prep.refs, b.predictions, prep.labels)
    metrics_out = {m: C.estimates(s, n, ev.bootstrap, prep.groups) for m, s in scored.items()}
    same = {name for name, o in inf.outs.items() if name != "tuned" and o is inf.outs["tuned"]}
    draws = C.Draws(ev.bootstrap, prep.groups)
    names = C.llm_labels(len(prep.shots or ()), ev.num_beams, inf.decoding)
    baselines = C.baseline_table(scored, metrics_out, metric, draws, alts.fitted, prep.labels, names, same)
    reference = C.reference(baselines, metric, config.criteria.baseline)
    improvement, significance = C.compare(scored["tuned"], scored[reference], metric, ev.bootstrap, task, prep.groups)
    significance["reference"] = reference
    classification = {m: s.details["report"] for m, s in scored.items()} if task == "classification" else None
    prep.timings["metrics_s"] = time.perf_counter() - t
    return _Scores(scored, metrics_out, baselines, reference, improvement, significance, classification)


@dataclass
class _Extras:
    """Stages 6-7, each None when switched off."""

    forgetting: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None


def _extras(config: TunerailConfig, inputs: EvalInputs, prep: _Prepared, inf: Inference) -> _Extras:
    """6. forgetting (``eval.forgetting``, with an adapter) and 7. the LLM judge (``eval.judge.enabled``)."""
    out = _Extras()
    if config.eval.forgetting and inputs.adapter_dir is not None:
        t = time.perf_counter()
        out.forgetting = forgetting_stage(config, inf.base_lm, inf.tuned_lm, prep.cache, inputs.progress)
        prep.timings["forgetting_s"] = time.perf_counter() - t
    if prep.judge_client is not None:
        t = time.perf_counter()
        out.judge = judge_stage(config, prep.judge_client, prep.records, prep.refs, inf.outs)
        prep.timings["judge_s"] = time.perf_counter() - t
    return out


def _decide(
    config: TunerailConfig,
    inputs: EvalInputs,
    prep: _Prepared,
    sc: _Scores,
    alts: AlternativesRun,
    constrained: bool,
    extras: _Extras,
    human: dict[str, Any] | None,
) -> tuple[Verdict, list[Finding]]:
    """9. READY / NOT READY against the criteria fixed before training, one finding per reason."""
    per_class = unmatched = None
    if sc.classification is not None:
        per_class = sc.classification["tuned"]["per_class"]
        free_report = sc.classification.get("tuned_free", sc.classification["tuned"])
        unmatched = free_report["unmatched"] / prep.n if prep.n else None
    ref_row = next(b for b in sc.baselines if b["name"] == sc.reference)
    return decide(
        config.criteria,
        VerdictInputs(
            metric=prep.metric,
            tuned=sc.metrics["tuned"],
            base=sc.metrics["base"],
            improvement=sc.improvement,
            per_class=per_class,
            forgetting=extras.forgetting,
            forgetting_enabled=config.eval.forgetting,
            has_adapter=inputs.adapter_dir is not None,
            criteria_state=prep.frozen["criteria_state"],
            doctor_findings=list(inputs.doctor_findings or []),
            leakage_findings=list(inputs.leakage_findings or []),
            judge=extras.judge,
            unmatched_rate=unmatched,
            rejected_rows=len(prep.rejected),
            baselines=[b for b in sc.baselines if b.get("gain") is not None],
            reference=sc.reference,
            reference_label=ref_row["label"],
            baselines_skipped=alts.skipped,
            baselines_failed=[C.failed_row(f) for f in alts.failed],
            constrained=constrained,
            human=human,
        ),
    )


def _prompt_record(config: TunerailConfig, prep: _Prepared, inf: Inference) -> dict[str, Any]:
    """Which prompt the verdict used: version, hash, text, k-shot, decoding (the setting and what the verdict scored)."""
    template, shots = prep.template, prep.shots
    return {
        "version": template.version,
        "hash": prompt_hash(template),
        "system": template.system,
        "template": template.template,
        "few_shot": len(shots),
        "few_shot_requested": config.eval.few_shot,
        "max_new_tokens": inf.max_new,
        "few_shot_hash": prompt_hash(template, shots) if shots else None,
        "decoding": config.eval.decoding if inf.decoding != "free" else "free",
        "verdict_decoding": inf.decoding,  # label_trie, span_copy, keyword_cover or free
        "num_beams": config.eval.num_beams,
    }


def _criteria_record(config: TunerailConfig) -> dict[str, Any]:
    return {
        **config.criteria.model_dump(mode="json"),
        "hash": config.criteria_hash(),
        "rule": ("95 % CI lower bound" if config.criteria.decision == "ci" else "point estimate"),
    }


def _lineage(config: TunerailConfig, inputs: EvalInputs, prep: _Prepared, inf: Inference) -> dict[str, Any]:
    """What was evaluated: models with fingerprints, data, the split manifest, the cache's hits and the adapter check."""
    return {
        "base_model": inputs.base_model or config.model.base,
        "base_fingerprint": inf.base_lm.fingerprint,
        "adapter_dir": str(inputs.adapter_dir) if inputs.adapter_dir else None,
        "tuned_fingerprint": inf.tuned_lm.fingerprint,
        "test_data": str(prep.test_path) if prep.test_path else None,
        "split_json": prep.frozen.get("split_json") or (str(inputs.split_json) if inputs.split_json else None),
        "eval_cache": G.cache_summary(G.CACHE_LOG[prep.cache_mark :]),
        "adapter_check": prep.adapter_check,
        **(inputs.lineage or {}),
    }


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
    records, _ = load_rows(config, validation_data)
    if limit:
        records = records[:limit]
    task = task_of(config, records)
    metric = metric_of(config)
    check_metric(task, metric, config.eval.label_ranking)
    refs = [r.completion for r in records]
    labels = sorted({r.label for r in records if r.label is not None}) if task == "classification" else []
    lm = G.load_model(base_model or config.model.base, adapter_dir)
    if cache_dir == "default":
        cache_dir = cache_root() / "eval"
    max_new = max_new_tokens(config, task, lm.tokenizer, labels)
    variants = []
    for template in config.prompts:
        prompts = [prompt_for(lm.tokenizer, r, template) for r in records]
        outs = Runner(
            Path(cache_dir) if cache_dir and config.eval.cache else None, prompts, refs, labels, config.eval, max_new, progress, {}
        ).outputs(f"prompt-{template.version}", lm)
        scores = T.score_output(task, refs, outs, labels)
        groups = [r.prompt for r in records]
        est = S.bootstrap_statistic(scores.statistic(metric), len(records), resamples=config.eval.bootstrap, groups=groups)
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
