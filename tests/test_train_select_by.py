"""``train.select_by: metric``: the checkpoint and early stopping follow the task metric, scored as eval scores it."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from train_tiny import banking_rows, tiny_config, write_jsonl


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    """Two Banking77 intents (64 train, 24 validation rows): the tiny model learns enough to score above zero."""
    rows = banking_rows(3000)
    top = {label for label, _ in collections.Counter(r["category"] for r in rows).most_common(2)}
    two = [r for r in rows if r["category"] in top]
    return write_jsonl(tmp_path / "train.jsonl", two[:64]), write_jsonl(tmp_path / "validation.jsonl", two[64:88])


def _train(cfg, splits, out, **kw):
    from tunerail.train import train

    return train(cfg, train_data=splits[0], validation_data=splits[1], out_dir=out, **kw)


def _plant(monkeypatch, values: list[float]) -> list[tuple[int, dict]]:
    """Replace the probe's score by ``values`` (one per evaluation); record each call's adapter weights."""
    from peft import get_peft_model_state_dict

    from tunerail.train.metric import MetricProbe

    seen: list[tuple[int, dict]] = []

    def planted(self, model):
        weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        seen.append((len(seen), weights))
        return values[len(seen) - 1]

    monkeypatch.setattr(MetricProbe, "__call__", planted)
    return seen


def test_restores_the_best_metric_step_not_the_best_loss_step(tmp_path, splits, monkeypatch):
    from safetensors.torch import load_file

    seen = _plant(monkeypatch, [0.1, 0.2, 0.9, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])  # evaluations at steps 0, 3, ..., 24
    cfg = tiny_config(tmp_path, select_by="metric", eval_steps=3, learning_rate=5e-3, epochs=3, patience=20, batch_size=8)
    result = _train(cfg, splits, tmp_path / "run")
    steps = [h["step"] for h in result.history]
    assert steps == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert result.best_step == 6 and result.best_val_metric == 0.9
    assert result.selection["select_by"] == "metric"
    assert result.selection["chosen_by"]["metric"] == 6 and result.selection["chosen_by"]["loss"] != 6  # they disagree here
    assert result.best_val_loss == result.history[2]["val_loss"]
    restored = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    at_six, at_loss_best = seen[2][1], seen[steps.index(result.selection["chosen_by"]["loss"])][1]
    assert restored.keys() == at_six.keys()
    assert all((restored[k] == at_six[k]).all() for k in restored)  # the step-6 weights, exactly
    assert any((restored[k] != at_loss_best[k]).any() for k in restored)


def test_early_stopping_follows_the_metric(tmp_path, splits, monkeypatch):
    _plant(monkeypatch, [0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1])  # peaks at step 3, loss keeps falling
    cfg = tiny_config(tmp_path, select_by="metric", eval_steps=3, learning_rate=5e-3, epochs=3, patience=2, batch_size=8)
    result = _train(cfg, splits, tmp_path / "run")
    assert result.stopped_reason == "early_stopping" and result.best_step == 3
    assert [h["step"] for h in result.history] == [0, 3, 6, 9]  # two evaluations without a better metric
    losses = [h["val_loss"] for h in result.history]
    assert losses == sorted(losses, reverse=True)  # on loss it would not have stopped here
    by_loss = _train(tiny_config(tmp_path, eval_steps=3, learning_rate=5e-3, epochs=3, patience=2, batch_size=8), splits, tmp_path / "l")
    assert by_loss.stopped_reason == "completed" and by_loss.selection["select_by"] == "loss"


def test_the_metric_is_the_eval_steps_number_on_the_same_rows(tmp_path, splits):
    """No planting: the probe's value at the restored step equals eval's verdict path on the recorded rows."""
    from tunerail import tasks as T
    from tunerail.eval import generate as G
    from tunerail.eval.inference import Runner, max_new_tokens, tuned_outputs
    from tunerail.prompting import pick_template, prompt_for
    from tunerail.train.data import load_split

    cfg = tiny_config(tmp_path, select_by="metric", metric_rows=16, eval_steps=2, learning_rate=5e-3, epochs=3, patience=20)
    result = _train(cfg, splits, tmp_path / "run")
    rows = result.selection["rows"]
    assert len(rows) == 16 and rows == sorted(rows) and result.selection["decoding"] == "constrained"
    val = load_split(splits[1], cfg, "validation")
    chosen = [val[i] for i in rows]
    labels = sorted({r.label for r in load_split(splits[0], cfg, "train") + val})
    lm = G.load_model(cfg.model.base, result.adapter_dir)
    prompts = [prompt_for(lm.tokenizer, r, pick_template(cfg)) for r in chosen]
    refs = [r.completion for r in chosen]
    run = Runner(None, prompts, refs, labels, cfg.eval, max_new_tokens(cfg, "classification", lm.tokenizer, labels), None, {})
    outs: dict = {}
    tuned_outputs(run, outs, lm, cfg.eval, has_adapter=True, want_ppl=False)
    accuracy = T.score_output("classification", refs, outs["tuned"], labels).statistic("accuracy")(list(range(len(refs))))
    assert 0 < result.best_val_metric < 1  # a number that can disagree, not a trivial 0 or 1
    assert accuracy == pytest.approx(result.best_val_metric)
    assert result.best_val_metric == max(h["val_metric"] for h in result.history)


def test_metric_cost_over_the_budget_is_said_before_the_first_step(tmp_path, splits):
    from tunerail.config import BudgetConfig
    from tunerail.train.budget import Estimate
    from tunerail.train.metric import check_metric_cost

    est = Estimate(tokens=1000, steps=10, seconds=600.0, cost=0.0, evals=5)
    found = check_metric_cost(est, BudgetConfig(max_hours=400 / 3600), seconds_per_eval=60.0, rows=100)
    assert [f.code for f in found] == ["TRN012"]
    assert "lower train.metric_rows to 33 or fewer" in found[0].fix  # 300 s without it, 100 s left for 5 x 60 s
    assert check_metric_cost(est, BudgetConfig(max_hours=1.0), seconds_per_eval=60.0, rows=100) == []
    assert check_metric_cost(est, BudgetConfig(), seconds_per_eval=60.0, rows=100) == []

    cfg = tiny_config(tmp_path, select_by="metric", probe_steps=1, eval_steps=3)
    cfg.budget.max_hours = 1e-7
    events: list[tuple[str, str]] = []
    result = _train(cfg, splits, tmp_path / "run", progress=lambda e, info: events.append((e, info.get("message", ""))))
    first_step = next(i for i, (e, _) in enumerate(events) if e == "step")
    assert any("TRN012" in m and "train.select_by: metric answers 24 validation rows" in m for _, m in events[:first_step])
    assert "TRN012" in {f.code for f in result.findings} and result.stopped_reason == "budget"


def test_config_round_trip_and_a_clear_error_for_an_unknown_metric(tmp_path):
    from tunerail.config import load_config
    from tunerail.errors import TunerailError
    from tunerail.train.metric import metric_name, metric_subset

    base = "task: extraction\ncriteria: {threshold: 0.4}\n"
    path = tmp_path / "ok.yaml"
    path.write_text(base + "train: {select_by: metric, metric: field_recall, metric_rows: 40}\n")
    cfg = load_config(path)
    assert (cfg.train.select_by, cfg.train.metric, cfg.train.metric_rows) == ("metric", "field_recall", 40)
    assert metric_name(cfg) == "field_recall"
    again = cfg.model_validate(cfg.model_dump(mode="json"))
    assert again.train == cfg.train
    assert metric_name(load_config(_write(tmp_path, base + "train: {select_by: metric}\n"))) == "field_f1"  # the criteria metric

    with pytest.raises(TunerailError) as err:
        load_config(_write(tmp_path, base + "train: {select_by: metric, metric: feild_f1}\n"))
    text = str(err.value)
    assert ".yaml:3 [train.metric]" in text and "'feild_f1'" in text and "did you mean 'field_f1'" in text and "json_valid" in text
    with pytest.raises(TunerailError) as err:
        load_config(_write(tmp_path, "task: extraction\ncriteria: {threshold: 3.0, metric: perplexity}\ntrain: {select_by: metric}\n"))
    assert "train.select_by" in str(err.value) and "use train.select_by: loss" in str(err.value)
    with pytest.raises(TunerailError):
        load_config(_write(tmp_path, base + "train: {select_by: accuracy}\n"))

    assert metric_subset(99, 20, 13) == metric_subset(99, 20, 13) != metric_subset(99, 20, 14)
    assert metric_subset(99, 20, 13) == sorted(set(metric_subset(99, 20, 13))) and len(metric_subset(99, 20, 13)) == 20
    assert metric_subset(5, 20, 13) == [0, 1, 2, 3, 4]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"c{abs(hash(text))}.yaml"
    path.write_text(text)
    return path


def test_the_report_draws_the_metric_curve_beside_the_loss_marked_where_each_criterion_chooses():
    from tunerail.eval.report import training_plots

    history = [
        {"step": 0, "train_loss": None, "val_loss": 1.4, "val_metric": 0.1},
        {"step": 15, "train_loss": 0.9, "val_loss": 0.4, "val_metric": 0.5},
        {"step": 30, "train_loss": 0.5, "val_loss": 0.3, "val_metric": 0.4},
    ]
    selection = {"select_by": "metric", "chosen_by": {"loss": 30, "metric": 15}, "metric": "field_f1", "rows": list(range(99))}
    out = training_plots({"history": history, "selection": selection})
    assert set(out) == {"loss", "val_metric"}
    assert "validation field_f1 (99 rows)" in out["val_metric"]
    assert "chosen by metric (used)" in out["val_metric"] and "chosen by loss" in out["loss"]
    assert set(training_plots({"history": [{k: v for k, v in h.items() if k != "val_metric"} for h in history]})) == {"loss"}


def test_the_cli_summary_shows_the_metric_column_and_both_choices():
    from types import SimpleNamespace

    from rich.console import Console

    from tunerail.train.progress import RichProgress

    history = [
        {"step": s, "epoch": s / 30, "train_loss": t, "val_loss": v, "val_metric": m, "lr": 1e-4, "tokens": 10 * s, "seconds": float(s)}
        for s, t, v, m in ((0, None, 1.4, 0.1), (15, 0.9, 0.4, 0.5), (30, 0.5, 0.3, 0.4))
    ]
    selection = {
        "select_by": "metric",
        "chosen_by": {"loss": 30, "metric": 15},
        "metric": "field_f1",
        "rows": [0, 1],
        "seconds_per_eval": 2.5,
    }
    result = SimpleNamespace(
        stopped_reason="completed", best_step=15, history=history, selection=selection, estimate=None, actual={},
        guards_disabled=[], adapter_dir="a", checkpoint_id="c", run_id=None, padding_waste=0.0,
    )  # fmt: skip
    console = Console(record=True, width=200)
    RichProgress(console).summary(result)
    text = console.export_text()
    assert "val field_f1" in text and "0.5000" in text
    assert "checkpoint chosen by metric: lowest val loss at step 30, highest val field_f1 at step 15 (2 rows, 2.5 s per evaluation)" in text


def test_metric_without_validation_rows_is_said_to_be_ignored(tmp_path, splits):
    from tunerail.train import train

    cfg = tiny_config(tmp_path, select_by="metric", guards={"validation": False}, eval_steps=4)
    messages: list[str] = []
    result = train(
        cfg,
        train_data=splits[0],
        validation_data=None,
        out_dir=tmp_path / "run",
        progress=lambda e, i: messages.append(i.get("message", "")),
    )
    assert any("train.select_by: metric is ignored without validation rows" in m for m in messages)
    assert result.selection["select_by"] == "loss" and all(h["val_metric"] is None for h in result.history)


def test_span_extraction_is_probed_with_span_copy_as_the_verdict_judges_it(tmp_path):
    """The metric training chooses on must come from the decoding the verdict uses (span copy on span extraction)."""
    from tunerail.config import TunerailConfig
    from tunerail.data.records import Record, RowRef
    from tunerail.models import load_tokenizer
    from tunerail.train.metric import MetricProbe
    from train_tiny import tiny_model_dir

    posts = [("Met Anna in Paris today", "Anna", "Paris"), ("Tom flew to Lima", "Tom", "Lima"), ("Rita loves Oslo", "Rita", "Oslo")] * 4
    rows = [
        Record(RowRef(i, i + 1), "prompt_completion", None, p, f'{{"person": ["{a}"], "location": ["{b}"]}}')
        for i, (p, a, b) in enumerate(posts)
    ]

    def probe(decoding: str) -> MetricProbe:
        cfg = TunerailConfig.model_validate(
            {
                "task": "extraction",
                "model": {"base": str(tiny_model_dir()), "max_seq_length": 128},
                "prompts": [{"system": "Extract.", "template": "{prompt}"}],
                "train": {"select_by": "metric", "bf16": False},
                "eval": {"decoding": decoding},
                "tracking": {"enabled": False},
                "store": {"path": str(tmp_path / "store")},
            }
        )
        return MetricProbe.from_config(cfg, rows[:6], rows[6:], load_tokenizer(str(tiny_model_dir())))

    chosen = probe("both")
    assert chosen.decoding == "span_copy" and chosen.sources == [r.prompt for r in rows[:6]]
    assert probe("free").decoding == "free" and probe("free").sources is None
