"""What select measures for one candidate; each probe is a small function over a loaded model.

- bits per byte of the reference answers given their prompts: ``-log2 p(answer | prompt)`` summed
  over the sample, divided by the answers' UTF-8 bytes (the answer's end-of-turn token excluded), so
  models with different tokenizers compare; the same on the forgetting suite (neutral prompt) as a
  general-capability reference point; :func:`document_bits_per_byte` is lm-eval's
  ``loglikelihood_rolling`` ``bits_per_byte`` (each document scored from the BOS/EOS prefix token).
- tokenizer fit: tokens per whitespace word, characters per token, share of rows whose training
  length (the trainer's own renderer) exceeds ``model.max_seq_length``.
- task score zero-shot and k-shot: classification by label ranking, other tasks by greedy generation
  scored with the eval step's scorers.
- resources: the train recipe's own setup and time probe (``train.probe_steps`` real forward+backward
  passes), peak RSS around it, and memory for full fine-tuning derived from it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunerail.config import DEFAULT_METRIC, TunerailConfig
from tunerail.data.records import Record
from tunerail import stats as S
from tunerail import tasks as T
from tunerail.eval import generate as G
from tunerail.eval.alternatives import FitData, choose, fit_alternatives, local_budget
from tunerail.prompting import prompt_for, training_lengths

LN2 = math.log(2)


# --- bits per byte ---------------------------------------------------------------------------------
def answer_bits(
    lm: G.LoadedModel,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 16,
    progress: Any = None,
    stage: str = "bits per byte",
) -> tuple[np.ndarray, np.ndarray]:
    """(bits, UTF-8 bytes) of each answer given its rendered prompt (eval's batched scorer, no EOS)."""
    logp, _ = G.score_answers(lm, prompts, answers, batch_size=batch_size, add_eos=False, progress=progress, stage=stage)
    return -np.asarray(logp) / LN2, np.array([len(a.encode("utf-8")) for a in answers], dtype=float)


def document_bits_per_byte(lm: G.LoadedModel, documents: Sequence[str], *, batch_size: int = 8) -> float:
    """lm-eval's ``loglikelihood_rolling`` bits per byte: every token of each document predicted from the
    BOS token (EOS when the tokenizer has none), summed, over the documents' UTF-8 bytes.

    Documents are encoded without the tokenizer's special tokens: one that adds a BOS itself (Gemma's)
    would otherwise be scored as ``<bos> <bos> text``, counting ``log p(<bos> | <bos>)`` as bits of the
    document (lm-eval 0.4 does that by default; ``add_bos_token=False`` matches this function).
    Documents longer than the model's context are not windowed (lm-eval would roll a window); select
    only uses short rows.
    """
    tok = lm.tokenizer
    prefix = tok.bos_token if tok.bos_token is not None else tok.eos_token
    bits, n_bytes = answer_bits(lm, [prefix] * len(documents), list(documents), batch_size=batch_size)
    return float(bits.sum() / max(n_bytes.sum(), 1))


def bpb_statistic(bits: np.ndarray, n_bytes: np.ndarray):
    """``idx -> bits per byte`` of the rows ``idx`` (a ratio of sums, for the shared bootstrap)."""
    bits, n_bytes = np.asarray(bits, dtype=float), np.asarray(n_bytes, dtype=float)
    return lambda idx: float(bits[idx].sum() / max(n_bytes[idx].sum(), 1.0))


# --- tokenizer fit ---------------------------------------------------------------------------------
def tokenizer_fit(tokenizer: Any, records: Sequence[Record], prompt_template: Any, max_seq_length: int) -> dict[str, Any]:
    """Fertility (tokens per word), characters per token and the truncated share at ``max_seq_length``."""
    texts = [r.text for r in records]
    enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    tokens = sum(len(e) for e in enc)
    words = sum(len(t.split()) for t in texts)
    chars = sum(len(t) for t in texts)
    lengths = training_lengths(tokenizer, records, prompt_template)
    over = sum(n > max_seq_length for n in lengths)
    return {
        "tokens_per_word": tokens / max(words, 1),
        "chars_per_token": chars / max(tokens, 1),
        "truncated_share": over / max(len(lengths), 1),
        "truncated_rows": over,
        "rows": len(lengths),
        "max_length": max(lengths, default=0),
        "mean_length": float(np.mean(lengths)) if lengths else 0.0,
    }


def data_language(records: Sequence[Record], config: Any) -> tuple[str | None, float]:
    """(dominant language, its share of identifiable rows) by the doctor's language identification."""
    from tunerail.doctor.checks.language import distribution, identify

    min_chars = config.doctor.min_language_chars
    langs = [
        identify(t) if sum(c.isalpha() for c in t) >= min_chars else None
        for t in (r.prompt if r.format == "text_label" else r.text for r in records)
    ]
    counts = distribution(langs, config.doctor.language_confidence)
    if not counts:
        return None, 0.0
    lang, n = counts.most_common(1)[0]
    return lang, n / sum(counts.values())


# --- task score ------------------------------------------------------------------------------------
def score_metric(config: Any, task: str) -> str:
    """The metric select ranks by: ``criteria.metric``, except perplexity (bits per byte covers it) and
    ``accuracy_ranking`` (select ranks labels anyway, so it is plain accuracy)."""
    metric = config.criteria.metric
    if metric == "perplexity":
        return DEFAULT_METRIC[task]
    return "accuracy" if metric == "accuracy_ranking" else metric


def label_ranking(
    lm: G.LoadedModel, prompts: Sequence[str], labels: Sequence[str], *, batch_size: int, length_normalize: bool, progress: Any = None
) -> list[str]:
    """Classification by ranking every label by log-likelihood (never answers outside the label set).

    One call site on purpose: the eval step owns label ranking (``tunerail.eval.generate.rank_labels``);
    select follows whatever it does there.
    """
    return G.rank_labels(lm, prompts, labels, batch_size=batch_size, length_normalize=length_normalize, progress=progress)


def task_outputs(
    lm: G.LoadedModel,
    records: Sequence[Record],
    *,
    task: str,
    template: Any,
    labels: Sequence[str],
    shots: Sequence[tuple[str, str]],
    config: Any,
    progress: Any = None,
) -> list[str]:
    """The model's answers on the sample (ranked labels, or greedy generations)."""
    prompts = [prompt_for(lm.tokenizer, r, template, shots) for r in records]
    bs = config.select.batch_size
    if task == "classification":
        return label_ranking(lm, prompts, labels, batch_size=bs, length_normalize=config.eval.length_normalize, progress=progress)
    return G.generate(lm, prompts, max_new_tokens=config.eval.max_new_tokens, batch_size=bs, progress=progress)


# --- resources -------------------------------------------------------------------------------------
class PeakRSS:
    """Peak resident memory inside a ``with`` block, in bytes.

    On Linux the kernel's high-water mark is reset on entry (``/proc/self/clear_refs`` = 5) and read on
    exit (``VmHWM``); elsewhere a 10 ms sampling thread stands in.
    """

    def __enter__(self) -> "PeakRSS":
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._kernel = False
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self._kernel = _vm_hwm() is not None
        except OSError:
            pass
        if not self._kernel:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        if self._kernel:
            self.peak = max(self.start, _vm_hwm() or 0)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._proc.memory_info().rss)


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def probe_training(
    config: Any, candidate: str, train_records: Sequence[Record], validation_records: Sequence[Record], work_dir: Any
) -> dict[str, Any]:
    """The train recipe's setup for ``candidate``, in a fresh process: time/cost estimate, parameters, memory.

    A fresh process (spawned, nothing inherited) because memory is measured as that process's peak
    resident memory: in select's own process the allocator keeps the pages of the candidates scored
    before, new tensors reuse them, and the growth seen there was 40 % under a real run's peak.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_probe_training_here, config, candidate, list(train_records), list(validation_records), str(work_dir)).result()


def _probe_training_here(
    config: Any, candidate: str, train_records: list[Record], validation_records: list[Record], work_dir: str
) -> dict[str, Any]:
    """``TrainRecipe.setup`` (data, model, LoRA, optimizer, ``select.probe_steps`` timed passes: the estimator
    `tunerail train` uses) with tracking and the lint off, then one forward+backward of the run's largest
    batch (most tokens, where activations peak; also where a GPU would run out of memory).

    Memory for LoRA = this process's peak RSS (libraries, weights, the largest batch's activations and
    gradients) + Adam's two fp32 moments per trainable parameter (no optimizer step runs here); full
    fine-tuning adds a fp32 gradient and two Adam moments (12 bytes) per base parameter, and 2 bytes per
    parameter when LoRA kept bf16 weights.
    """
    from pathlib import Path

    with PeakRSS() as peak:
        import psutil

        import accelerate  # noqa: F401
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from tunerail.store import Store
        from tunerail.train.recipe import TrainRecipe

        runtime = psutil.Process().memory_info().rss  # the libraries `train` imports, before any model
        cfg = config.model_copy(deep=True)
        cfg.model.base = candidate
        cfg.train.probe_steps = max(1, config.select.probe_steps)
        cfg.train.method = "lora"
        cfg.train.guards = {**cfg.train.guards, "lint": False}
        cfg.tracking.enabled = False
        start = time.perf_counter()
        work = Path(work_dir)
        recipe = TrainRecipe(cfg, out_dir=work, resume=False, store=Store(work / "store"), progress=lambda e, i: None)
        try:
            recipe.setup(train_records, validation_records)
            if recipe.estimate is None:  # train measures its estimate just before step 1: the same probe here
                recipe._setup_estimate(None)
            batches = recipe._epoch_batches(0)
            largest = max(batches, key=recipe._batch_tokens)
            recipe.loss_model.train()
            loss_sum, count = recipe.loss_model(**recipe._collate(largest))
            recipe.accelerator.backward(loss_sum / count.clamp(min=1))
            recipe.optimizer.zero_grad(set_to_none=True)
            largest_tokens = recipe._batch_tokens(largest)
            estimate = recipe.estimate.to_dict() if recipe.estimate else {}
            params = recipe.params
            bf16_weights = bool(getattr(recipe, "bf16", False)) and next(recipe.model.parameters()).dtype.itemsize == 2
        finally:
            recipe.cleanup()
    lora_bytes = peak.peak + 8 * params.trainable
    full_bytes = lora_bytes + 12 * params.total + (2 * params.total if bf16_weights else 0)
    return {
        "params": params.total,
        "trainable_lora": params.trainable,
        "memory_lora_gb": lora_bytes / 1e9,
        "memory_full_gb": full_bytes / 1e9,
        "memory_measured": {
            "runtime_gb": runtime / 1e9,
            "peak_rss_gb": peak.peak / 1e9,
            "largest_batch_tokens": largest_tokens,
            "process": "fresh (spawned)",
        },
        "estimate": estimate,
        "probe_s": time.perf_counter() - start,
    }


def machine_memory_bytes() -> int:
    """Memory a training run could use here: the GPU's when there is one, else the machine's RAM."""
    import psutil

    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory)
    except Exception:  # pragma: no cover - torch without CUDA bits
        pass
    return int(os.environ.get("TUNERAIL_MEMORY_BYTES") or psutil.virtual_memory().total)


# --- cheap baselines: the eval step's alternatives registry ----------------------------------------
def task_scores(task: str, refs: list[str], outputs: list[str], labels: list[str]) -> Any:
    """The eval step's scorer; select's classification answers are ranked labels, so they count as ranking too."""
    return T.score(task, refs, outputs, labels, ranked=outputs if task == "classification" else None)


def cheap_baselines(
    config: TunerailConfig, train_rows: Sequence[Record], sample: Sequence[Record], labels: list[str], metric: str, cache: Path
) -> dict[str, dict[str, Any]]:
    """The eval step's alternatives for this task (same registry) fitted on the training rows and scored on the
    sample, plus the majority answer, with the same scorer and bootstrap as the candidates.

    A failed alternative is kept with its ``error`` (SEL050 names it) rather than dropped.
    """
    from collections import Counter

    sc = config.select
    task = config.task
    train = [r for r in train_rows if task != "classification" or r.label is not None]
    answers = [str(r.label) if task == "classification" else r.completion for r in train]
    if not train or (task == "classification" and len(set(answers)) < 2):
        return {}
    prompts = [r.prompt for r in train]
    # the eval's budget for them on as many rows: select must not spend more on the alternatives than eval will
    data = FitData(
        task,
        prompts,
        answers,
        [],
        [],
        [r.prompt for r in sample],
        config.model.embedding_model,
        sc.seed,
        local_budget(len(sample), config.eval.alternatives_budget_share),
    )
    preds = {"majority": [Counter(answers).most_common(1)[0][0]] * len(sample)}
    out: dict[str, dict[str, Any]] = {}
    for fitted in fit_alternatives(data, choose(task, data.fit_prompts, data.fit_answers)[1], cache):
        if fitted.error is not None:
            out[fitted.name] = {"error": fitted.error, "library": fitted.library}
        else:
            preds[fitted.name] = fitted.predictions
    refs = [r.completion for r in sample]
    for name, outputs in preds.items():
        stat = task_scores(task, refs, outputs, labels).statistic(metric)
        out[name] = {**S.bootstrap_statistic(stat, len(sample), resamples=sc.bootstrap, seed=sc.seed).to_dict(), "outputs": outputs}
    return out
