"""`tunerail sweep` on the tiny random Llama: budget share, pruning, divergence, outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from train_tiny import banking_rows, tiny_config, write_jsonl


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_jsonl(tmp_path / "train.jsonl", banking_rows(64)),
        write_jsonl(tmp_path / "validation.jsonl", banking_rows(16, offset=1000)),
    )


def _config(tmp_path, *, max_hours=1.0, space=None, trials=4, **train):
    cfg = tiny_config(tmp_path, **train)
    cfg.budget.max_hours = max_hours
    cfg.sweep.trials = trials
    cfg.sweep.space = space if space is not None else {}
    return cfg


def test_sweep_writes_study_outputs(tmp_path, splits):
    import tunerail

    cfg = _config(tmp_path, space={"epochs": 1, "batch_size": [8], "replay_ratio": None}, trials=3)
    cfg.tracking.enabled = True  # local SQLite MLflow beside the store (tmp_path)
    result = tunerail.sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "sweep")
    assert result.counts.get("COMPLETE", 0) + result.counts.get("PRUNED", 0) == 3
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["best_value"] == result.best_value and saved["share"]["used_seconds"] > 0
    assert "seed" not in saved["best_params"] and saved["best_params"]["epochs"] == 1
    best = (tmp_path / "sweep" / "best.yaml").read_text()
    assert "learning_rate" in best and "train:" in best
    html = (tmp_path / "sweep" / "report.html").read_text()
    assert "Optimization history" in html and "Plotly.newPlot" in html
    assert '<script src="http' not in html and "<script src='http" not in html  # plotly.js inline: opens offline
    for t in result.trials:
        assert t["params"]["epochs"] == 1 and 2e-5 <= t["params"]["learning_rate"] <= 2e-3
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}")
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["tunerail.kind"] == "sweep" and parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(int(r.data.tags["tunerail.trial"]) for r in children) == [t["number"] for t in result.trials]
    assert {r.info.run_id for r in children} == {t["run_id"] for t in result.trials}


@pytest.mark.slow
def test_budget_share_is_never_exceeded(tmp_path, splits):
    # 400 epochs would take far longer than the 150 s share: trials are cut before a step that would not fit, the
    # sweep stops. The share counts every second of the call (setup, between trials, report), so the wall clock
    # measured here, outside the sweep, stays within it too.
    allowed = 150.0
    cfg = _config(
        tmp_path,
        max_hours=allowed / 3600 / 0.2,
        trials=6,
        patience=10_000,  # early stopping never ends one first
        space={"epochs": 400, "batch_size": [8], "replay_ratio": None},
    )
    from tunerail.sweep import sweep

    start = time.perf_counter()
    result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "sweep")
    wall = time.perf_counter() - start
    assert result.share["allowed_seconds"] == pytest.approx(allowed)
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["share"]
    assert wall <= allowed and saved["used_seconds"] <= allowed and not saved["exceeded"]
    assert saved["used_seconds"] >= result.share["used_seconds"]  # sweep.json, written last, charges the report too
    assert result.counts["budget_cut"] >= 1 and len(result.trials) < 6
    cut = next(t for t in result.trials if str(t["reason"]).startswith("budget share"))
    assert cut["state"] == "COMPLETE" and cut["value"] is not None  # counted, with its best value so far


@pytest.mark.slow
def test_share_holds_on_a_slow_machine_with_a_slow_finish(tmp_path, monkeypatch):
    # Every batch 50 ms slower, and storing a trial's adapter 3 s (a slow disk): a trial that stops must still
    # finish inside the share. Before, the stop reserve was one evaluation interval (well under a second here),
    # so the last trial's finish and the time between trials ran over the share.
    from tunerail.train.recipe import TrainRecipe

    collate, finish = TrainRecipe._collate, TrainRecipe.finish

    def slow_collate(self, *args, **kwargs):
        time.sleep(0.05)
        return collate(self, *args, **kwargs)

    def slow_finish(self):
        time.sleep(3.0)
        return finish(self)

    monkeypatch.setattr(TrainRecipe, "_collate", slow_collate)
    monkeypatch.setattr(TrainRecipe, "finish", slow_finish)
    allowed = 120.0  # at load 12 on 2 cores the first setup (imports, model load) alone took 15-24 s, a step up to 6 s
    splits = (
        write_jsonl(tmp_path / "train.jsonl", banking_rows(16)),  # 2 steps a trial: trials end, then the share
        write_jsonl(tmp_path / "validation.jsonl", banking_rows(8, offset=1000)),
    )
    cfg = _config(tmp_path, max_hours=allowed / 3600 / 0.2, trials=30, space={"epochs": 1, "batch_size": [8], "replay_ratio": None})
    from tunerail.sweep import sweep

    start = time.perf_counter()
    result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "sweep")
    wall = time.perf_counter() - start
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["share"]
    assert wall <= allowed and saved["used_seconds"] <= allowed and not saved["exceeded"]
    assert len(result.trials) >= 2 and len(result.trials) < 30  # the share, not the trial count, ended the sweep
    assert saved["measured_costs"]["tail"] >= 3.0  # the slow finish was measured and planned for
    assert wall - saved["used_seconds"] < 1.0  # nothing the sweep did went uncharged


def test_share_meter_charges_every_worker_and_plans_the_stop():
    import optuna

    from tunerail.sweep.share import ShareMeter

    study = optuna.create_study()
    other = ShareMeter(study, allowed=100.0, worker="other", start=time.perf_counter() - 30.0)
    other.publish()  # another worker has spent 30 s (a dead one's last figure counts too)
    meter = ShareMeter(study, allowed=100.0, worker="me", start=time.perf_counter() - 20.0)
    assert 50.0 <= meter.spent() < 51.0
    costs = meter.costs
    costs.see("eval", 4.0)
    assert costs.stop_cost() == 8.0  # before a finish was measured: twice an evaluation
    costs.see("outputs", 2.0)  # measured before the first trial
    assert costs.stop_cost() == 12.0  # the finish, the outputs the tail writes, the final outputs
    costs.see("tail", 10.0)
    assert costs.stop_cost() == 12.0  # a measured tail already holds its own write of the outputs
    costs.see("first_step", 9.0)  # a trial's warm-up step does not set the pace of later steps
    assert costs.step_cost() == 9.0  # ...until a later step was measured
    costs.see("step", 1.0)
    costs.see("step", 3.0)  # a burst of another process on this machine
    for _ in range(20):
        costs.see("step", 1.0)
    assert costs.step_cost() == 3.0  # the slowest step seen is planned for, however many quick ones follow
    assert costs.trial_cost() == 9.0 + 2 * 4.0 + 12.0  # a new trial starts with a first step
    need = costs.step_cost() + costs.eval + costs.stop_cost()  # 19 s: a step, its cut's evaluation, finish, outputs
    assert meter.fits(need)  # 50 + 1.25 x 19 <= 100 - 2 (the headroom)
    assert not meter.fits(42.0)  # 50 + 1.25 x 42 > 100
    assert meter.headroom == 2.0  # a one-second burst on the last unit must not overrun the share
    assert not meter.fits(39.0)  # 50 + 1.25 x 39 = 98.75: within the share, not within its headroom
    assert ShareMeter(study, allowed=1000.0, worker="big").headroom == 20.0  # 2 % of a larger share
    with pytest.raises(ValueError):
        costs.see("stpe", 1.0)


def test_pruner_stops_a_worse_trial(tmp_path, splits):
    import optuna

    from tunerail.sweep.recipe import study_name
    from tunerail.sweep.space import build_space
    from tunerail.sweep.storage import default_url

    cfg = _config(
        tmp_path,
        trials=2,
        space={"epochs": 2, "batch_size": [8], "replay_ratio": None, "warmup_ratio": 0.0, "lora.r": 16, "lora.alpha": 32},
    )
    cfg.sweep.startup_trials = 1
    out = tmp_path / "sweep"
    out.mkdir()
    name = study_name(cfg, [splits[0], splits[1]], build_space("lora", cfg.train, cfg.sweep.space))
    study = optuna.create_study(storage=default_url(out), study_name=name, direction="minimize")
    study.enqueue_trial({"learning_rate": 2e-3})  # learns fast
    study.enqueue_trial({"learning_rate": 2e-5})  # barely moves: behind the first at its first evaluation
    from tunerail.sweep import sweep

    result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=out)
    states = {t["params"]["learning_rate"]: t for t in result.trials}
    assert states[2e-3]["state"] == "COMPLETE"
    assert states[2e-5]["state"] == "PRUNED" and "pruned by the median pruner" in states[2e-5]["reason"]
    assert result.best_params["learning_rate"] == 2e-3


def test_multi_fidelity_compares_settings_and_keeps_the_planted_best(tmp_path, splits):
    # Rung 0 trains three settings on a seeded third of the rows; successive halving (eta 3) keeps one, which
    # runs last at full length. Planted: learning rates 100x and 10,000x too small next to a good one.
    import optuna

    from tunerail.sweep.recipe import study_name
    from tunerail.sweep.space import build_space
    from tunerail.sweep.storage import default_url

    cfg = _config(tmp_path, trials=3, space={"epochs": 2, "batch_size": [8], "replay_ratio": None, "warmup_ratio": 0.0})
    cfg.sweep.fidelity, cfg.sweep.min_fraction, cfg.sweep.eta = "rows", 1 / 3, 3
    out = tmp_path / "sweep"
    out.mkdir()
    name = study_name(cfg, [splits[0], splits[1]], build_space("lora", cfg.train, cfg.sweep.space))
    study = optuna.create_study(storage=default_url(out), study_name=name, direction="minimize")
    for lr in (2e-5, 2e-3, 2e-7):
        study.enqueue_trial({"learning_rate": lr, "lora.r": 8, "lora.alpha": 16})
    from tunerail.sweep import sweep

    result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=out)
    rung0 = [t for t in result.trials if t["fidelity"]["rung"] == 0]
    assert len({t["params"]["learning_rate"] for t in rung0}) == 3  # three settings compared inside the share
    assert all(t["fidelity"] == {"kind": "rows", "fraction": 0.3333, "rung": 0, "rows": 22} for t in rung0)
    (kept,) = [t for t in rung0 if t["number"] in result.rungs[0]["kept"]]
    assert kept["params"]["learning_rate"] == 2e-3  # the clearly better setting survived the rung
    assert [r["fraction"] for r in result.rungs] == [0.3333, 1.0] and len(result.rungs[1]["trials"]) == 1
    final = next(t for t in result.trials if t["fidelity"]["rung"] == 1)
    assert final["promoted_from"] == kept["number"] and final["params"] == kept["params"]
    assert result.best_trial == final["number"] and result.best_params["learning_rate"] == 2e-3
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["rungs"] == result.rungs and saved["trials"][0]["fidelity"]["kind"] == "rows"
    assert "Successive halving" in (out / "report.html").read_text()


@pytest.mark.slow
def test_multi_fidelity_compares_settings_in_a_share_smaller_than_one_trial(tmp_path, splits):
    # 400 epochs (3,200 steps) never fit a 120 s share: a full-length sweep finishes no trial and chooses nothing.
    # With steps as the fidelity, rung 0 runs 1/729 of the steps (5) per setting, and the planner stops rung 0
    # only once its survivors no longer fit; the share is still never exceeded.
    allowed = 120.0  # at load 12-16 on 2 cores the first setup alone took 15-24 s
    cfg = _config(
        tmp_path,
        max_hours=allowed / 3600 / 0.2,
        trials=12,
        patience=10_000,
        space={"epochs": 400, "batch_size": [8], "replay_ratio": None, "warmup_ratio": 0.0},
    )
    cfg.sweep.fidelity, cfg.sweep.min_fraction, cfg.sweep.eta = "steps", 1 / 729, 3
    from tunerail.sweep import sweep

    start = time.perf_counter()
    result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "sweep")
    wall = time.perf_counter() - start
    rung0 = [t for t in result.trials if t["fidelity"]["rung"] == 0]
    short = [t for t in rung0 if t["state"] == "COMPLETE" and t["reason"].startswith("rung 0: 5 steps")]
    assert len({json.dumps(t["params"], sort_keys=True) for t in short}) >= 3, [(t["state"], t["reason"]) for t in result.trials]
    assert result.rungs[0]["kept"] and result.best_params is not None  # a setting was chosen, from the highest rung reached
    top = max(t["fidelity"]["rung"] for t in result.trials)
    assert next(t for t in result.trials if t["number"] == result.best_trial)["fidelity"]["rung"] == top
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["share"]
    assert wall <= allowed and not saved["exceeded"]


def test_peft_method_is_a_dimension_with_its_cost(tmp_path, splits):
    # LoRA and DoRA compared in one sweep: each trial trains its own method (DoRA adds a magnitude vector per
    # adapted layer), and sweep.json puts each method's seconds per step beside its best value.
    import optuna

    from tunerail.sweep.recipe import study_name
    from tunerail.sweep.space import build_space
    from tunerail.sweep.storage import default_url

    space = {"epochs": 1, "batch_size": [16], "replay_ratio": None, "warmup_ratio": 0.0, "learning_rate": 2e-3, "lora.r": 8}
    cfg = _config(tmp_path, trials=2, space={**space, "lora.variant": ["lora", "dora"]})
    cfg.sweep.pruner = "none"
    out = tmp_path / "sweep"
    out.mkdir()
    name = study_name(cfg, [splits[0], splits[1]], build_space("lora", cfg.train, cfg.sweep.space))
    study = optuna.create_study(storage=default_url(out), study_name=name, direction="minimize")
    for variant in ("lora", "dora"):
        study.enqueue_trial({"lora.variant": variant})
    from tunerail.train.lora import prepare_model

    seen: list[bool] = []
    real = prepare_model

    def spy(model, **kw):
        wrapped = real(model, **kw)
        seen.append(any("lora_magnitude_vector" in n for n, _ in wrapped.named_parameters()))
        return wrapped

    import tunerail.train.lora as lora_mod

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lora_mod, "prepare_model", spy)  # the train recipe imports it at setup
        from tunerail.sweep import sweep

        result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=out)
    assert seen == [False, True]  # the second trial really trained DoRA
    methods = json.loads((out / "sweep.json").read_text())["methods"]
    assert set(methods) == {"lora", "dora"} and result.methods == methods
    for m in methods.values():
        assert m["trials"] == 1 and m["best_value"] is not None and m["seconds_per_step"] > 0
    assert "PEFT method: score and cost" in (out / "report.html").read_text()


def test_diverging_trial_is_pruned_with_its_reason(tmp_path):
    # Full fine-tuning at lr 1.0 (lint off, recorded) diverges within steps (see test_train_recipe).
    splits = (
        write_jsonl(tmp_path / "train.jsonl", banking_rows(96)),
        write_jsonl(tmp_path / "validation.jsonl", banking_rows(16, offset=1000)),
    )
    cfg = _config(
        tmp_path,
        trials=1,
        method="full",
        guards={"lint": False},
        space={"learning_rate": 1.0, "epochs": 1, "batch_size": [8], "warmup_ratio": 0.0, "replay_ratio": None},
    )
    from tunerail.sweep import sweep

    result = sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "sweep")
    (trial,) = result.trials
    assert trial["state"] == "PRUNED" and trial["reason"].startswith("divergence:")
    assert "TRN020" in trial["findings"] and "TRN008" in trial["findings"]  # guard fired; lint switch-off recorded
    assert result.best_params is None and not (tmp_path / "sweep" / "best.yaml").exists()
    assert "divergence:" in (tmp_path / "sweep" / "report.html").read_text()


def test_space_rejects_the_seed_and_unknown_dimensions(tmp_path):
    from tunerail.config import TunerailConfig
    from tunerail.errors import ConfigError
    from tunerail.sweep.space import build_space, default_space

    with pytest.raises(Exception, match="seed is never searched"):
        TunerailConfig.model_validate({"sweep": {"space": {"seed": [1, 2]}}})
    cfg = TunerailConfig()
    with pytest.raises(ConfigError) as err:
        build_space("lora", cfg.train, {"lerning_rate": {"low": 1e-4, "high": 1e-3}, "lora.r": {"low": 8}})
    text = str(err.value)
    assert "sweep.space.lerning_rate" in text and "sweep.space.lora.r" in text
    assert "lora.r" not in default_space("full", cfg.train) and "lora.r" in default_space("lora", cfg.train)
    lr = default_space("full", cfg.train)["learning_rate"]
    assert lr.log and lr.low == pytest.approx(2e-6) and lr.high == pytest.approx(2e-4)
    fixed = build_space("lora", cfg.train, {"batch_size": 8, "replay_ratio": None})
    assert not fixed["batch_size"].searched and "replay_ratio" not in fixed


@pytest.mark.parametrize(
    "url, expect",
    [
        ("postgresql://tunerail:secret@127.0.0.1:1/nope", "cannot open the sweep storage"),
        ("redis://localhost/0", "unsupported sweep storage URL"),
    ],
)
def test_bad_storage_url_is_a_clear_error(tmp_path, splits, url, expect, capsys):
    from tunerail.cli import main

    (tmp_path / "tunerail.yaml").write_text(
        "task: classification\ncriteria: {threshold: 0.5}\nbudget: {max_hours: 1}\ntracking: {enabled: false}\n"
    )
    code = main(
        [
            "sweep",
            "--config",
            str(tmp_path / "tunerail.yaml"),
            "--train",
            str(splits[0]),
            "--validation",
            str(splits[1]),
            "--storage",
            url,
            "--out",
            str(tmp_path / "sweep"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert expect in err and "--storage" in err and "secret" not in err and "Traceback" not in err


@pytest.mark.slow
def test_run_sweeps_then_trains_with_best_yaml_applied(tmp_path):
    from test_pipeline import _project

    from tunerail.pipeline import run

    config = _project(tmp_path)
    data = json.loads(config.read_text())
    data["budget"] = {"max_hours": 1.0}
    data["sweep"] = {  # enabled by default (budget.max_hours set)
        "trials": 2,
        "pruner": "none",
        "space": {"epochs": 1, "batch_size": [16], "replay_ratio": None, "warmup_ratio": 0.0},
    }
    config.write_text(json.dumps(data))
    first = run(config, out_dir=tmp_path / "run")
    assert [s.name for s in first.steps] == ["doctor", "split", "leakage", "sweep", "train", "eval"]
    best = first.results["sweep"].best_params
    train_step = next(s for s in first.steps if s.name == "train")
    assert train_step.summary["sweep_applied"]["params"] == best
    from tunerail.config import load_config
    from tunerail.store import Store
    from tunerail.sweep.space import apply, load_overlay

    assert load_overlay(tmp_path / "run" / "sweep" / "best.yaml") == best
    trained = json.loads((tmp_path / "run" / "train" / "train.json").read_text())
    checkpoint = next(a for a in Store(tmp_path / "store").list("checkpoint") if a.id == trained["checkpoint_id"])
    # The checkpoint was trained with exactly the configured settings + best.yaml.
    assert checkpoint.meta["config_fingerprint"] == apply(load_config(config), best).fingerprint()
    assert checkpoint.meta["config_fingerprint"] != load_config(config).fingerprint()
    second = run(config, out_dir=tmp_path / "run")  # inputs unchanged: the finished study is reused
    assert all(s.skipped for s in second.steps if s.name in ("sweep", "train"))
    assert train_step.summary["sweep_skipped"] is None
    data["sweep"]["enabled"] = False
    data["store"] = {"path": "store-off"}  # a fresh eval cache: a cached cheap-baseline entry fails on reread (eval/recipe.py:572)
    config.write_text(json.dumps(data))
    off = run(config, out_dir=tmp_path / "run-off")
    assert "sweep" not in [s.name for s in off.steps]
    recorded = json.loads((tmp_path / "run-off" / "train" / "step.json").read_text())
    assert recorded["summary"]["sweep_skipped"]["sweep.enabled"] is False and recorded["summary"]["sweep_applied"] is None


def test_a_trial_cut_before_a_trained_step_is_pruned_not_the_best(tmp_path):
    # The E2E demo's sweep cut its only trial at step 0 (the share ran out during setup) and reported that
    # untrained setting as the best, so `run` would have trained it; its value was the base model's loss.
    from types import SimpleNamespace

    import optuna

    from tunerail.sweep.trial import Trial

    study = optuna.create_study()
    state = SimpleNamespace(parent=None, config=SimpleNamespace(sweep=SimpleNamespace(objective="loss")))
    untrained = SimpleNamespace(
        run_id=None, stopped_reason="budget", findings=[], best_step=0, best_val_loss=2.669, history=[{"step": 0, "val_loss": 2.669}]
    )
    trial = Trial(state, study.ask())
    trial.reason = "budget share: ...; cut at step 0"
    with pytest.raises(optuna.TrialPruned, match="before a trained step was evaluated"):
        trial._value(untrained)
    trained = SimpleNamespace(**{**vars(untrained), "best_step": 4, "best_val_loss": 2.1, "history": [{"step": 0}, {"step": 4}]})
    assert Trial(state, study.ask())._value(trained) == 2.1
