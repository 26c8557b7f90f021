"""``train.method: dpo | orpo | kto``: preference tuning of a LoRA adapter, with the SFT recipe's rails.

Run it with ``tunerail train --pairs PAIRS --adapter RUN/adapter --test split/test.jsonl --out RUN_DPO``
(``PAIRS``: a prompt/chosen/rejected file, or an eval folder whose blind review collected votes;
``--resume`` continues a killed or budget-stopped run from its last checkpoint) or
``tunerail.train.preference.train_preference(config, pairs=..., out_dir=...)``. Then evaluate the new
adapter on the frozen test set with the same criteria: ``tunerail eval --test split/test.jsonl
--adapter RUN_DPO/adapter`` (verdict, forgetting check and review material, as after SFT).

The loss is TRL's: ``DPOTrainer`` (Rafailov et al. 2023, arXiv:2305.18290), ``ORPOTrainer``
(reference-free: an odds-ratio term added to the SFT loss) or ``KTOTrainer`` (each pair split into a
desirable and an undesirable example); ``preference_methods.py`` says what each method picks. One
code path runs them all, with the same rails:

- pairs audited first (``doctor/checks/preference.py``): empty, identical, contradicting and
  frozen-test pairs are dropped and written to ``preference_quarantine.jsonl`` with the reason;
- LoRA by default: with ``adapter`` (the SFT checkpoint) the adapter keeps training and TRL keeps a
  frozen copy of it as the reference model (dpo, kto; orpo has none); without one a fresh LoRA is
  trained against the base;
- whole prompts held out (``train.preference.validation_share``) for early stopping on the
  validation reward margin or accuracy (best checkpoint restored), and for the before/after check:
  the share of held-out pairs where the policy gives the chosen answer the higher log-likelihood,
  with its Wilson 95 % interval;
- budget cap (``budget.max_hours`` / ``max_cost``) over every session of the run, and a
  non-finite-loss stop (divergence); ``--resume`` continues from the last checkpoint
  (``preference_rails.py``);
- forgetting: the chosen answers' mean log-likelihood per token before and after (DPO can lower it
  while the margin grows, "likelihood displacement": TRN030), and the general-capability suite of
  ``tunerail eval``;
- lineage: the pairs are stored (``preference_pairs``, with the review's vote ids) and are the
  checkpoint's parents with the SFT checkpoint; both ids are in ``train.json``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.preference import PairSet, PreferencePair, load_pairs_file, split_by_prompt
from tunerail.doctor.checks.preference import audit_pairs, bad_pairs, vote_contradictions
from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.findings import Finding, Severity, sort_findings
from tunerail.io import hash_file, write_atomic, write_private
from tunerail.logs import is_quiet
from tunerail.prompting import build_messages, pick_template, render_example
from tunerail.stats import wilson_interval
from tunerail.train.budget import cost_of
from tunerail.train.checkpoint import earlier_run, resume_fingerprint
from tunerail.train.guards import disabled_guards
from tunerail.train.lint import LR_DEFAULT, LintInputs, lint_hyperparameters
from tunerail.train.lint import gate as lint_gate
from tunerail.train.preference_methods import METHODS, PreferenceMethod
from tunerail.train.preference_rails import PreferenceProgress, rails_callback, resume_progress

DISPLACEMENT_NATS = 0.5  # chosen answers' mean log-likelihood per token may fall this much before TRN030 warns


@dataclass
class PreferenceResult:
    """What a preference run produced; also written to ``out_dir/train.json``."""

    adapter_dir: Path
    base_model: str
    reference: str  # what the policy is compared with: the SFT adapter it started from, the base model, or none (orpo)
    checkpoint_id: str | None
    pairs_id: str | None  # store artifact of the pairs trained on (parent of the checkpoint)
    history: list[dict[str, Any]]
    best_step: int | None
    stopped_reason: str  # completed | early_stopping | budget | divergence
    before: dict[str, Any]  # held-out preference accuracy, margin, chosen log-likelihood: the starting adapter
    after: dict[str, Any]  # the same for the best checkpoint
    data: dict[str, Any]
    findings: list[Finding]
    guards_disabled: list[str]
    actual: dict[str, Any]  # steps; seconds and cost summed over the sessions of a resumed run; sessions
    method: str = "dpo"
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["adapter_dir"] = str(self.adapter_dir)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


@dataclass
class RenderedPair:
    """A pair as the model sees it: the templated prompt and each answer with its end-of-turn marker."""

    prompt: str
    chosen: str
    rejected: str


def render_pairs(pairs: Sequence[PreferencePair], tokenizer: Any, template: Any) -> list[RenderedPair]:
    """The run's prompt template and chat template applied, as in SFT training and eval generation."""
    out = []
    eos = tokenizer.eos_token or ""
    for p in pairs:
        messages = build_messages(p.prompt, template)
        prompt, chosen = render_example(tokenizer, messages, p.chosen)
        _, rejected = render_example(tokenizer, messages, p.rejected)
        if eos:  # TRL appends EOS to an answer not ending with it: keep the template's marker last
            chosen, rejected = (a.rstrip() if a.rstrip().endswith(eos) else a for a in (chosen, rejected))
        out.append(RenderedPair(prompt, chosen, rejected))
    return out


def answer_logprob(model: Any, tokenizer: Any, prompt: str, answer: str) -> tuple[float, int]:
    """(sum of the answer tokens' log-probabilities given the prompt, answer token count)."""
    import torch

    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    device = next(model.parameters()).device
    ids = torch.tensor([p_ids + a_ids], device=device)
    # Logits of the positions that predict the answer only (the LM head over the prompt is wasted work).
    logits = model(input_ids=ids, logits_to_keep=len(a_ids) + 1).logits[0, :-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(a_ids, device=device)[:, None])
    return float(logp.sum()), len(a_ids)


def preference_scores(model: Any, tokenizer: Any, rows: Sequence[RenderedPair]) -> dict[str, Any]:
    """How the policy itself ranks held-out pairs (no reference): accuracy with its Wilson CI, mean margin.

    Accuracy: share of pairs with log p(chosen) > log p(rejected) (summed over answer tokens, what
    DPO optimises). ``chosen_logp_per_token``: the chosen answers' mean log-likelihood per token.
    """
    import torch

    was_training = model.training
    model.eval()
    margins, chosen_lp, chosen_tokens = [], 0.0, 0
    with torch.no_grad():
        for r in rows:
            lp_c, n_c = answer_logprob(model, tokenizer, r.prompt, r.chosen)
            lp_r, _ = answer_logprob(model, tokenizer, r.prompt, r.rejected)
            margins.append(lp_c - lp_r)
            chosen_lp, chosen_tokens = chosen_lp + lp_c, chosen_tokens + n_c
    if was_training:
        model.train()
    wins = sum(m > 0 for m in margins)
    low, high = wilson_interval(wins, len(margins))
    return {
        "pairs": len(margins),
        "accuracy": wins / len(margins) if margins else None,
        "accuracy_low": low,
        "accuracy_high": high,
        "margin": sum(margins) / len(margins) if margins else None,
        "chosen_logp_per_token": chosen_lp / chosen_tokens if chosen_tokens else None,
    }


def audit(pairset: PairSet, test_prompts: Sequence[str], out_dir: Path) -> tuple[list[PreferencePair], list[Finding], dict[str, int]]:
    """Run the preference checks; drop the pairs an error names and write them (and rejected rows) to quarantine."""
    findings = audit_pairs(pairset.pairs, test_prompts) + vote_contradictions(pairset.counts)
    if not test_prompts:
        findings.append(
            Finding(
                "preference.test_leak",
                Severity.WARNING,
                "pairs were not checked against the frozen test prompts: a review of the test set's outputs would leak into the eval",
                "pass --test split/test.jsonl (train_preference(test=...))",
                code="DOC073",
            )
        )
    drop = bad_pairs(findings)
    kept = [p for i, p in enumerate(pairset.pairs) if i not in drop]
    dropped: dict[str, int] = {}
    lines = []
    for i, reason in sorted(drop.items()):
        dropped[reason] = dropped.get(reason, 0) + 1
        lines.append(json.dumps({**pairset.pairs[i].to_json(), "_reason": reason}, ensure_ascii=False))
    for rej in pairset.rejections:
        dropped["format"] = dropped.get("format", 0) + 1
        lines.append(json.dumps({"_tunerail": rej.ref.to_dict(), "_reason": rej.reason, "_field": rej.field}, ensure_ascii=False))
    if lines:
        write_private(out_dir / "preference_quarantine.jsonl", "\n".join(lines) + "\n")
    return kept, findings, dropped


def _test_prompts(test: str | Path | None, config: Any) -> list[str]:
    """The frozen test file's prompts, read with the config's ``data`` layout (as `tunerail split` wrote its columns)."""
    if test is None:
        return []
    from tunerail.data.loaders import load_records

    records, _, _ = load_records(test, config.data.format, config.data.columns, config.data.group_column)
    return [r.prompt for r in records]


def train_preference(
    config: Any,
    *,
    pairs: PairSet | str | Path,
    out_dir: str | Path,
    adapter: str | Path | None = None,
    test: str | Path | None = None,
    store: Any = None,
    resume: bool = False,
) -> PreferenceResult:
    """Preference-tune ``adapter`` (or a fresh LoRA on ``config.model.base``) on ``pairs`` with ``train.method``.

    Parameters
    ----------
    pairs : a PairSet (``tunerail.review.pairs.review_pairs(eval_dir)``) or a prompt/chosen/rejected file.
    out_dir : run folder: ``adapter/`` (best), ``train.json``, ``preference_quarantine.jsonl``.
    adapter : the SFT adapter to improve; it is also the reference model (dpo, kto). None: a new LoRA, reference = base.
    test : the frozen test file; pairs whose prompt is in it are dropped (DOC073).
    store : where the pairs and the checkpoint are stored with lineage; default ``config.store.path``.
    resume : continue from the last checkpoint in ``out_dir/checkpoints`` (same pairs and settings); the
        budget and ``actual.seconds``/``cost`` then cover every session. False refuses a folder holding a run.

    Raises
    ------
    GuardrailError : no pair left after the audit, or too few prompts to hold out a validation share.
    TunerailError : an earlier run in ``out_dir`` without ``resume``; a resume whose budget is already spent.
    """
    out_dir = Path(out_dir)
    if not resume and any((out_dir / "checkpoints").glob("checkpoint-*")):
        raise earlier_run(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairset = pairs if isinstance(pairs, PairSet) else load_pairs_file(pairs)
    kept, findings, dropped = audit(pairset, _test_prompts(test, config), out_dir)
    train_pairs, val_pairs = split_by_prompt(kept, config.train.preference.validation_share, config.train.seed)
    if not train_pairs or not val_pairs:
        raise GuardrailError(
            Problem(
                f"{len(kept)} usable pair(s) over too few prompts to train and hold out a validation share (dropped: {dropped or 'none'})",
                file=pairset.source,
                fix="collect pairs on more prompts (at least two), outside the frozen test set",
            )
        )
    run = _PreferenceRun(config, out_dir, store)
    start = resume_progress(run.ckpt_root, config.budget, run.disabled) if resume else None
    return run.fit(pairset, train_pairs, val_pairs, adapter, findings, dropped, start)


class _PreferenceRun:
    """One preference run: model, the method's TRL trainer with the rails as callbacks, then storage with lineage."""

    def __init__(self, config: Any, out_dir: Path, store: Any):
        self.config, self.tc, self.out_dir = config, config.train, out_dir
        if self.tc.method not in METHODS:
            raise TunerailError(
                Problem(
                    f"train.method {self.tc.method} is not a preference method",
                    field="train.method",
                    fix=f"set train.method to one of {', '.join(METHODS)} to tune on pairs, or train on rows with `tunerail train --train`",
                )
            )
        self.method: PreferenceMethod = METHODS[self.tc.method]
        self.lr: float = self.tc.learning_rate or LR_DEFAULT[self.method.name]  # the lint judges what TRL is given
        self.ckpt_root = out_dir / "checkpoints"
        if store is None:
            from tunerail.store import Store

            store = Store(config.resolve(config.store.path))
        self.store = store
        self.disabled = disabled_guards(self.tc)

    def fit(
        self,
        pairset: PairSet,
        train_pairs: list[PreferencePair],
        val_pairs: list[PreferencePair],
        adapter: str | Path | None,
        findings: list[Finding],
        dropped: dict[str, int],
        start: tuple[Path, PreferenceProgress] | None = None,
    ) -> PreferenceResult:
        """Train (from ``start``'s checkpoint when resuming), score the held-out pairs before and after, store."""
        from tunerail.models import load_tokenizer

        findings = findings + self._lint(len(train_pairs), len(val_pairs))  # refuses an error before the model loads
        tokenizer = load_tokenizer(self.config.model.base)
        template = pick_template(self.config)
        train_rows, val_rows = render_pairs(train_pairs, tokenizer, template), render_pairs(val_pairs, tokenizer, template)
        model = self._model(adapter)
        before = preference_scores(model, tokenizer, val_rows)
        fingerprint = resume_fingerprint(self.config)
        if start is not None and start[1].fingerprint != fingerprint:
            print("warning: the config changed since the checkpoint; the checkpoint's step count wins", file=sys.stderr)
        guard = rails_callback(self.config.budget, self.disabled, self.ckpt_root, start[1] if start else None, fingerprint)
        trainer = self._trainer(model, tokenizer, train_rows, val_rows, guard)
        trainer.train(resume_from_checkpoint=str(start[0]) if start else None)
        best = trainer.model  # load_best_model_at_end restored the best checkpoint
        after = preference_scores(best, tokenizer, val_rows)
        findings = findings + _displacement(before, after)
        adapter_dir = self.out_dir / "adapter"
        best.save_pretrained(adapter_dir, selected_adapters=["default"])
        data = {
            "source": pairset.source,
            "counts": pairset.counts,
            "dropped": dropped,
            "train_pairs": len(train_pairs),
            "validation_pairs": len(val_pairs),
        }
        result = PreferenceResult(
            adapter_dir=adapter_dir,
            base_model=self.config.model.base,
            reference=self.method.reference(adapter, self.config.model.base),
            checkpoint_id=None,
            pairs_id=None,
            history=guard.history,
            best_step=_best_step(trainer),
            stopped_reason=guard.reason or ("early_stopping" if trainer.state.global_step < trainer.state.max_steps else "completed"),
            before=before,
            after=after,
            data=data,
            findings=sort_findings(findings),
            guards_disabled=self.disabled,
            actual=guard.finish(trainer.state.global_step),
            method=self.method.name,
        )
        result.actual["cost"] = round(cost_of(result.actual["seconds"], self.config.budget.price_per_hour), 4)
        self._store(result, pairset, kept=train_pairs + val_pairs, adapter=adapter)
        return result

    def _lint(self, n_train: int, n_validation: int) -> list[Finding]:
        """The SFT run's hyperparameter lint on this method's ranges (TRN001 learning rate, epochs, batch, LoRA shape)."""
        tc = self.tc
        inputs = LintInputs(
            method=self.method.name,
            learning_rate=self.lr,
            epochs=tc.epochs,
            batch_size=tc.batch_size * tc.gradient_accumulation,
            n_train=n_train,
            n_validation=n_validation,
            max_seq_length=self.config.model.max_seq_length,
            lora_r=tc.lora.r,
            lora_alpha=tc.lora.alpha,
            early_stopping="early_stopping" not in self.disabled,
            disabled_guards=self.disabled,
        )
        return lint_gate(lint_hyperparameters(inputs), self.disabled)

    def _model(self, adapter: str | Path | None) -> Any:
        """The policy: the SFT adapter made trainable again (dpo and kto: TRL copies it as the frozen reference), or a fresh LoRA."""
        from tunerail.train.lora import load_base_model, prepare_model

        if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
            raise TunerailError(
                Problem(
                    "not a LoRA adapter folder (no adapter_config.json)",
                    file=str(adapter),
                    field="--adapter",
                    fix="pass the adapter/ folder of a `tunerail train` run (train.method lora), or leave --adapter out",
                )
            )
        base = load_base_model(self.config.model.base, method="lora", bf16=False)
        if adapter is None:
            return prepare_model(base, method="lora", lora=self.tc.lora, seed=self.tc.seed)
        from peft import PeftModel

        return PeftModel.from_pretrained(base, str(adapter), is_trainable=True)

    def _trainer(self, model: Any, tokenizer: Any, train_rows: list[RenderedPair], val_rows: list[RenderedPair], guard: Any) -> Any:
        """The method's TRL trainer on its dataset shape, with the shared settings and the rails as callbacks."""
        import torch
        from datasets import Dataset
        from transformers import EarlyStoppingCallback, PrinterCallback

        tc, pc = self.tc, self.tc.preference
        config_class, trainer_class = self.method.classes()
        train_set = Dataset.from_list(self.method.rows(train_rows, tc.seed))
        steps_per_epoch = math.ceil(len(train_set) / (tc.batch_size * tc.gradient_accumulation))
        total = max(1, math.ceil(tc.epochs * steps_per_epoch))
        eval_steps = tc.eval_steps or max(1, min(total // 10, math.ceil(steps_per_epoch / 4))) or 1
        early = "early_stopping" not in self.disabled
        args = config_class(
            output_dir=str(self.ckpt_root),
            **self.method.settings(pc),
            learning_rate=self.lr,
            num_train_epochs=tc.epochs,
            per_device_train_batch_size=tc.batch_size,
            per_device_eval_batch_size=tc.batch_size,
            gradient_accumulation_steps=tc.gradient_accumulation,
            warmup_steps=round(tc.warmup_ratio * total),
            weight_decay=tc.weight_decay,
            max_grad_norm=tc.max_grad_norm,
            max_length=self.config.model.max_seq_length,
            eval_strategy="steps",
            eval_steps=eval_steps,
            save_strategy="steps",
            save_steps=eval_steps,
            save_total_limit=2,  # the best and the latest (the resume point)
            save_only_model=False,  # optimizer, scheduler and RNG too: --resume continues the same run
            restore_callback_states_from_checkpoint=True,  # early stopping's patience counter survives a resume
            load_best_model_at_end=True,
            metric_for_best_model=self.method.metric_key(pc.metric),
            greater_is_better=True,
            logging_steps=1,
            report_to=[],
            seed=tc.seed,
            bf16=bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported() and tc.bf16 is not False),
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            gradient_checkpointing=False,  # as the SFT recipe: recomputing activations costs ~30 % of the step time
            dataset_num_proc=None,
        )
        callbacks = [guard] + ([EarlyStoppingCallback(early_stopping_patience=tc.patience)] if early else [])
        if is_quiet():  # `tunerail train` without --verbose: no dataset-map bars
            from datasets.utils.logging import disable_progress_bar

            disable_progress_bar()
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=Dataset.from_list(self.method.rows(val_rows, tc.seed)),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout; the rails callback prints one line per evaluation
        return trainer

    def _store(self, result: PreferenceResult, pairset: PairSet, *, kept: list[PreferencePair], adapter: str | Path | None) -> None:
        """Pairs and checkpoint into the store (pairs -> checkpoint, SFT checkpoint -> checkpoint); then train.json."""
        blob = "".join(json.dumps(p.to_json(), ensure_ascii=False, sort_keys=True) + "\n" for p in kept).encode()
        meta = {"source": pairset.source, "counts": pairset.counts, **pairset.lineage}
        pairs_artifact = self.store.add("preference_pairs", {"pairs.jsonl": blob}, transform="preference_pairs", meta=meta)
        parents = [pairs_artifact.id] + _stored_checkpoint(self.store, adapter)
        result.lineage = {"pairs": pairs_artifact.id, "parents": parents, "votes": pairset.lineage.get("votes", [])}
        checkpoint = self.store.add_folder(
            "checkpoint",
            result.adapter_dir,
            parents=parents,
            transform=f"train_{result.method}",
            meta={"base_model": result.base_model, "method": result.method, "reference": result.reference, "after": result.after},
        )
        result.pairs_id, result.checkpoint_id = pairs_artifact.id, checkpoint.id
        write_atomic(self.out_dir / "train.json", json.dumps(result.to_dict(), indent=2, default=str))


def _stored_checkpoint(store: Any, adapter: str | Path | None) -> list[str]:
    """The store id of the SFT checkpoint whose adapter weights ``adapter`` holds (empty when not stored)."""
    if adapter is None:
        return []
    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.exists():
        return []
    sha = hash_file(weights)
    return [a.id for a in store.list("checkpoint") if any(f["sha256"] == sha for f in a.files.values())][:1]


def _best_step(trainer: Any) -> int | None:
    path = trainer.state.best_model_checkpoint
    return int(path.rsplit("-", 1)[-1]) if path else None


def _displacement(before: dict[str, Any], after: dict[str, Any]) -> list[Finding]:
    """TRN030: the chosen answers became less likely (the margin grew by pushing both answers down)."""
    b, a = before.get("chosen_logp_per_token"), after.get("chosen_logp_per_token")
    if b is None or a is None or b - a <= DISPLACEMENT_NATS:
        return []
    return [
        Finding(
            "train.likelihood_displacement",
            Severity.WARNING,
            f"the chosen answers' log-likelihood fell from {b:.3f} to {a:.3f} nats per token while tuning on preferences",
            "lower train.learning_rate or raise train.preference.beta; check forgetting with `tunerail eval`",
            code="TRN030",
        )
    ]
