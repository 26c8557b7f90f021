"""train.method orpo and kto (one code path with dpo), their config combinations, and --resume of a preference run."""

from __future__ import annotations

import json

import pytest
import yaml

from tunerail.data.preference import PairSet
from tunerail.errors import ConfigError, TunerailError
from test_train_preference import planted_pairs
from train_tiny import tiny_config, write_jsonl


def _yaml(tmp_path, train: dict) -> str:
    path = tmp_path / "tunerail.yaml"
    path.write_text(yaml.safe_dump({"criteria": {"threshold": 0.5}, "train": train, "tracking": {"enabled": False}}), encoding="utf-8")
    return str(path)


def test_unpaired_rows_give_each_pair_a_desirable_and_an_undesirable_example_in_alternation():
    from tunerail.train.preference import RenderedPair
    from tunerail.train.preference_methods import unpaired_rows

    for n in (5, 6):  # both parities: the seam between the two passes must keep the order
        rows = [RenderedPair(f"p{i}", f"good {i}", f"bad {i}") for i in range(n)]
        out = unpaired_rows(rows, seed=3)
        assert sorted((r["prompt"], r["completion"], r["label"]) for r in out) == sorted(
            [(f"p{i}", f"good {i}", True) for i in range(n)] + [(f"p{i}", f"bad {i}", False) for i in range(n)]
        )
        assert [r["label"] for r in out] == [k % 2 == 0 for k in range(2 * n)]  # every batch of 2+ holds both labels
        assert all(a["prompt"] != b["prompt"] for a, b in zip(out, out[1:]))  # KTO's KL pairs a row with its neighbour's answer


def test_preference_method_combinations_are_checked_when_the_config_loads(tmp_path):
    from tunerail.config import load_config

    cfg = load_config(_yaml(tmp_path, {"method": "kto", "preference": {"beta": 0.2}}))
    assert cfg.train.method == "kto" and cfg.train.preference.beta == 0.2
    assert load_config(_yaml(tmp_path, {"method": "orpo"})).train.method == "orpo"
    bad = [
        ({"method": "kto", "preference": {"metric": "accuracy"}}, "train.preference.metric 'accuracy' is not logged by kto"),
        ({"method": "orpo", "preference": {"loss_type": "ipo"}}, "train.preference.loss_type is DPO's loss"),
        ({"method": "kto", "batch_size": 1}, "train.batch_size must be 2 or more for kto"),
        ({"method": "simpo"}, "simpo"),
    ]
    for train, message in bad:
        with pytest.raises(ConfigError) as err:
            load_config(_yaml(tmp_path, train))
        assert message in str(err.value), str(err.value)
        assert err.value.problems[0].field.startswith("train")
    assert load_config(_yaml(tmp_path, {"method": "dpo", "preference": {"loss_type": "ipo", "metric": "accuracy"}}))


def test_sft_refuses_the_preference_methods_and_the_preference_run_refuses_sft(tmp_path):
    from tunerail.train import train
    from tunerail.train.preference import _PreferenceRun

    for method in ("orpo", "kto"):
        with pytest.raises(TunerailError, match=f"train.method {method} tunes on preference pairs"):
            train(tiny_config(tmp_path, method=method), train_data=[], validation_data=None, out_dir=tmp_path / "run")
    with pytest.raises(TunerailError, match="not a preference method"):
        _PreferenceRun(tiny_config(tmp_path, method="lora"), tmp_path / "run", None)


@pytest.mark.slow
def test_orpo_learns_a_planted_preference_reference_free(tmp_path):
    from tunerail.train.preference import train_preference

    cfg = tiny_config(tmp_path, method="orpo", learning_rate=2e-2, epochs=3, batch_size=8, eval_steps=3, patience=5, guards={"lint": False})
    cfg.model.max_seq_length = 64
    cfg.train.preference.validation_share = 0.5
    result = train_preference(cfg, pairs=PairSet(planted_pairs(32), "planted"), out_dir=tmp_path / "orpo")
    assert result.after["margin"] > result.before["margin"] and result.after["accuracy"] > result.before["accuracy"]
    saved = json.loads((tmp_path / "orpo" / "train.json").read_text())
    assert saved["method"] == "orpo" and saved["reference"].startswith("none (orpo is reference-free")
    assert any("eval_log_odds_ratio" in h for h in saved["history"])  # ORPO's own loss term was logged: TRL's ORPOTrainer ran
    stored = next(a for a in _store(cfg).list("checkpoint") if a.id == saved["checkpoint_id"])
    assert stored.transform == "train_orpo" and stored.parents == [saved["pairs_id"]]


@pytest.mark.slow
def test_kto_on_pairs_through_the_cli_learns_the_planted_preference_and_is_recorded(tmp_path):
    from typer.testing import CliRunner

    from tunerail.cli import app

    cfg = tiny_config(tmp_path, method="kto", learning_rate=2e-2, epochs=3, batch_size=8, eval_steps=3, patience=5, guards={"lint": False})
    cfg.model.max_seq_length = 64
    cfg.train.preference.validation_share = 0.5
    config = tmp_path / "kto.yaml"
    data = {**cfg.model_dump(mode="json", exclude_unset=True), "criteria": {"threshold": 0.5}}
    data["train"]["preference"] = {"validation_share": 0.5}  # exclude_unset drops a section assigned field by field
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl", [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in planted_pairs(32)]
    )
    cli = CliRunner().invoke(app, ["train", "-c", str(config), "--pairs", str(pairs), "--out", str(tmp_path / "kto")])
    assert cli.exit_code == 0, cli.output
    assert "kto: 16 train / 16 validation pairs" in " ".join(cli.output.split())  # rich wraps the summary line
    saved = json.loads((tmp_path / "kto" / "train.json").read_text())
    assert saved["method"] == "kto" and saved["reference"].startswith("base model")
    assert saved["after"]["margin"] > saved["before"]["margin"] and saved["after"]["accuracy"] > saved["before"]["accuracy"]
    assert any("eval_kl" in h for h in saved["history"])  # KTO's KL estimate was logged: TRL's KTOTrainer ran on unpaired rows


def _store(cfg):
    from tunerail.store import Store

    return Store(cfg.resolve(cfg.store.path))


@pytest.mark.slow
def test_a_budget_stopped_dpo_run_resumes_to_the_uninterrupted_step_count_and_sums_its_time(tmp_path):
    from safetensors.torch import load_file

    from tunerail.train.preference import train_preference

    def config(max_hours):
        cfg = tiny_config(
            tmp_path, method="dpo", learning_rate=2e-2, epochs=3, batch_size=8, eval_steps=2, patience=10, guards={"lint": False}
        )
        cfg.model.max_seq_length = 64
        cfg.train.preference.validation_share = 0.5
        cfg.budget.max_hours = max_hours
        cfg.budget.price_per_hour = 3.6  # 0.001 per second: the cost is checked too
        return cfg

    pairs = PairSet(planted_pairs(32), "planted")
    whole = train_preference(config(None), pairs=pairs, out_dir=tmp_path / "whole")
    first = train_preference(config(1e-9), pairs=pairs, out_dir=tmp_path / "cut")
    assert first.stopped_reason == "budget" and first.actual["steps"] == 1 < whole.actual["steps"] == 6
    with pytest.raises(TunerailError, match="earlier run"):  # no --resume: the folder is not silently reused
        train_preference(config(None), pairs=pairs, out_dir=tmp_path / "cut")
    with pytest.raises(TunerailError, match="used its budget"):  # still over the cap: not one more step
        train_preference(config(1e-9), pairs=pairs, out_dir=tmp_path / "cut", resume=True)
    resumed = train_preference(config(None), pairs=pairs, out_dir=tmp_path / "cut", resume=True)
    assert resumed.stopped_reason == "completed" and resumed.actual["steps"] == whole.actual["steps"]
    assert resumed.actual["sessions"][0] == pytest.approx(first.actual["seconds"], abs=0.02)  # the cut run's time, to its end
    assert resumed.actual["seconds"] == pytest.approx(first.actual["seconds"] + resumed.actual["sessions"][1], abs=0.02)
    assert resumed.actual["cost"] == pytest.approx(first.actual["cost"] + resumed.actual["sessions"][1] * 0.001, abs=1e-3)
    assert [h["step"] for h in resumed.history if "eval_rewards/margins" in h] == [2, 4, 6]
    # The resumed run is the same run: optimizer, scheduler and data order restored, so the weights match.
    a = load_file(str(whole.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    assert resumed.best_step == whole.best_step and all(a[k].allclose(b[k], atol=1e-5) for k in a)
