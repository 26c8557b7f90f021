"""Preference tuning (train.method: dpo): pairs from votes and files, the doctor's preference checks, DPO on a planted preference."""

from __future__ import annotations

import json
import random

import pytest

from tunerail.data.preference import PairSet, PreferencePair, load_pairs_file, split_by_prompt
from tunerail.doctor.checks.preference import audit_pairs, bad_pairs
from tunerail.errors import DataError
from tunerail.io import hash_file
from tunerail.review.pairs import pairs_from_votes, review_pairs
from tunerail.review.store import ReviewStore, make_units
from review_helpers import make_material
from train_tiny import banking_rows, tiny_config, write_jsonl


def _vote(unit, annotator, preference, item=0, first="base", second="tuned", skip=None):
    return {
        "unit": unit,
        "annotator": annotator,
        "preference": preference,
        "item": item,
        "first": first,
        "second": second,
        "skip_reason": skip,
    }


def test_pairs_from_votes_drop_ties_and_even_splits_and_keep_the_majority():
    items = [{"input": f"q{i}", "outputs": {"base": f"base {i}", "tuned": f"tuned {i}"}} for i in range(4)]
    votes = [
        _vote("u0", "ann", "tuned", item=0),  # one clear vote
        _vote("u1", "ann", "tie", item=1),  # a tie: no preference
        _vote("u2", "ann", "base", item=2),  # annotators split 1-1: contradicted and dropped
        _vote("u2", "bob", "tuned", item=2),
        _vote("u3", "ann", "base", item=3),  # 2-1: contradicted, majority kept
        _vote("u3", "bob", "base", item=3),
        _vote("u3", "cy", "tuned", item=3),
        _vote("u3", "dan", None, item=3, skip="unreadable"),
    ]
    pairs, counts = pairs_from_votes(items, votes)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("q0", "tuned 0", "base 0"), ("q3", "base 3", "tuned 3")]
    assert counts == {"votes": 8, "skipped": 1, "ties": 1, "units": 3, "contradicted": 2, "contradicted_dropped": 1, "pairs": 2}
    assert pairs[1].votes == ("ann/u3", "bob/u3", "cy/u3")  # lineage: every vote on the unit


def test_review_pairs_read_the_store_votes_with_their_ids(tmp_path):
    material = make_material(tmp_path, 6, xss=False)
    items = [json.loads(line) for line in material.read_text().splitlines()]
    units = make_units(items, [("base", "tuned")], seed=1)
    store = ReviewStore(tmp_path / "review" / "review.sqlite")
    store.create(material_hash=hash_file(material), units=units, annotators=["ann"], overlap=0.0, seed=1, pairs=[("base", "tuned")])
    for k, u in enumerate(units):
        store.cast("ann", u.unit, preference="tie" if k == 0 else "tuned", rubric={}, comment="", skip_reason=None)
    got = review_pairs(tmp_path)
    assert got.counts["ties"] == 1 and got.counts["pairs"] == 5
    assert all(p.chosen == items[u.item]["outputs"]["tuned"] for p, u in zip(got.pairs, sorted(units[1:], key=lambda u: u.item)))
    assert got.lineage["votes"] == sorted(f"ann/{u.unit}" for u in units[1:])


def test_bad_preference_file_rows_are_rejected_with_line_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"prompt": "p1", "chosen": "good", "rejected": "bad"})
        + "\n{not json\n"
        + json.dumps({"prompt": "p2", "chosen": "good"})
        + "\n"
        + json.dumps({"prompt": "p3", "chosen": "", "rejected": "bad"})
        + "\n",
        encoding="utf-8",
    )
    got = load_pairs_file(path)
    assert [p.prompt for p in got.pairs] == ["p1"]
    assert [(r.ref.line, r.field) for r in got.rejections] == [(2, None), (3, "rejected"), (4, "chosen")]
    assert got.counts == {"rows": 4, "pairs": 1, "rejected_rows": 3}


def test_preference_file_without_a_usable_pair_exits_2(tmp_path):
    from typer.testing import CliRunner

    from tunerail.cli import app

    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "p", "chosen": "a"}, {"prompt": "q", "chosen": "b"}])
    with pytest.raises(DataError, match="no usable preference pair"):
        load_pairs_file(path)
    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text("criteria:\n  threshold: 0.5\ntrain:\n  method: dpo\ntracking:\n  enabled: false\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "-c", str(cfg), "--pairs", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "pairs.jsonl:1" in result.output and "rejected" in result.output


def test_audit_names_empty_identical_contradicting_and_leaking_pairs():
    pairs = [
        PreferencePair("How do I top up?", "Use the app.", "No idea."),  # 0 fine
        PreferencePair("Card lost", "Freeze it in the app.", "  "),  # 1 empty rejected
        PreferencePair("Fees?", "None.", "none. "),  # 2 identical after normalisation
        PreferencePair("PIN?", "Open Settings.", "Call us."),  # 3 and 4 contradict
        PreferencePair("pin?", "Call us.", "Open Settings."),
        PreferencePair("What is my balance?", "See Home.", "Ask later."),  # 5 leaks into the test prompts
    ]
    findings = audit_pairs(pairs, test_prompts=["what is my  BALANCE?"])
    assert {f.code: f.details["pairs"] for f in findings} == {"DOC070": [1], "DOC071": [2], "DOC072": [3, 4], "DOC073": [5]}
    assert bad_pairs(findings) == {
        1: "preference.empty",
        2: "preference.identical",
        3: "preference.contradiction",
        4: "preference.contradiction",
        5: "preference.test_leak",
    }


def test_doctor_audits_a_preference_file(tmp_path):
    from typer.testing import CliRunner

    from tunerail.cli import app
    from tunerail.doctor import doctor

    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "a", "chosen": "x", "rejected": "y"},
            {"prompt": "a", "chosen": "y", "rejected": "x"},
            {"prompt": "b", "chosen": "same", "rejected": "Same"},
            {"prompt": "c", "chosen": "x"},
            {"prompt": "What is my balance?", "chosen": "See Home.", "rejected": "Later."},
            {"prompt": "e", "chosen": "", "rejected": "y"},
        ],
    )
    test = write_jsonl(tmp_path / "test.jsonl", [{"prompt": "what is my balance?", "completion": "Home tab."}])
    result = doctor(path, semantic=False, test=test, fix=True, out_dir=tmp_path / "report")
    got = {(f.code, tuple(r.line for r in f.rows)) for f in result.findings if f.check.startswith("preference.")}
    assert got == {("DOC072", (1, 2)), ("DOC071", (3,)), ("DOC070", (4,)), ("DOC073", (5,))}
    quarantined = [json.loads(line)["_tunerail"]["line"] for line in (tmp_path / "report" / "quarantine.jsonl").read_text().splitlines()]
    assert 6 in quarantined  # the empty chosen answer: rejected by the loader, quarantined with its reason
    cli = CliRunner().invoke(app, ["doctor", str(path), "--no-semantic", "--out", str(tmp_path / "cli"), "--test", str(test)])
    assert cli.exit_code == 1 and "DOC073" in cli.output
    assert "DOC073" not in {f.code for f in doctor(path, semantic=False).findings}  # no --test: the leak check is skipped


def test_split_by_prompt_keeps_each_prompt_on_one_side():
    pairs = [PreferencePair(f"prompt {i % 10}", f"a{i}", f"b{i}") for i in range(40)]
    train, val = split_by_prompt(pairs, 0.2, seed=3)
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in val})
    assert len({p.prompt for p in val}) == 2 and len(train) + len(val) == 40


POLITE = ["Glad to help!", "Happy to assist.", "Thanks for asking!", "Have a great day!"]
CURT = ["Figure it out.", "Not my problem.", "Ask someone else.", "Whatever works."]


def planted_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Annotators always prefer the answer that closes politely; phrases vary so the untuned model has no fixed bias."""
    rng = random.Random(seed)
    out = []
    for r in banking_rows(n):
        label = r["category"].replace("_", " ")
        out.append(PreferencePair(r["text"], f"{label}. {rng.choice(POLITE)}", f"{label}. {rng.choice(CURT)}"))
    return out


@pytest.mark.slow
def test_dpo_on_a_planted_preference_raises_held_out_preference(tmp_path):
    from tunerail.train.preference import _PreferenceRun, train_preference

    cfg = tiny_config(tmp_path, method="dpo", learning_rate=2e-2, epochs=3, batch_size=8, eval_steps=3, patience=5, guards={"lint": False})
    cfg.model.max_seq_length = 64
    cfg.train.preference.validation_share = 0.5  # 16 held-out prompts for the before/after comparison
    result = train_preference(cfg, pairs=PairSet(planted_pairs(32), "planted"), out_dir=tmp_path / "dpo")
    before, after = result.before, result.after
    assert after["margin"] > before["margin"] and after["accuracy"] > before["accuracy"]
    saved = json.loads((tmp_path / "dpo" / "train.json").read_text())
    assert [(f["code"], f["severity"]) for f in saved["findings"]] == [
        ("DOC073", "warning"),
        ("TRN008", "info"),
    ]  # no --test: said, not silent; the lint off: said
    assert saved["method"] == "dpo" and saved["checkpoint_id"] and saved["lineage"]["parents"] == [saved["pairs_id"]]
    adapter = tmp_path / "dpo" / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and not (adapter / "ref").exists()  # the frozen reference is not shipped

    # A second round starts from that adapter: it keeps training and a frozen copy of it is the reference.
    from tunerail.models import load_tokenizer
    from tunerail.prompting import pick_template
    from tunerail.train.preference import _stored_checkpoint, render_pairs
    from tunerail.train.preference_rails import rails_callback

    run = _PreferenceRun(cfg, tmp_path / "round2", None)
    rows = render_pairs(planted_pairs(8), load_tokenizer(cfg.model.base), pick_template(cfg))
    trainer = run._trainer(run._model(adapter), load_tokenizer(cfg.model.base), rows, rows, rails_callback(cfg.budget, []))
    weights = dict(trainer.model.named_parameters())
    ref = [n for n in weights if ".ref." in n]
    assert ref and all(weights[n].equal(weights[n.replace(".ref.", ".default.")]) for n in ref)
    assert all(not weights[n].requires_grad for n in ref) and any(weights[n].requires_grad for n in weights if ".default." in n)
    assert _stored_checkpoint(run.store, adapter) == [saved["checkpoint_id"]]  # lineage: round 2's parent is round 1


def test_rails_stop_on_the_budget_and_on_a_non_finite_loss():
    from transformers import TrainerControl, TrainerState

    from tunerail.config import BudgetConfig
    from tunerail.train.preference_rails import rails_callback

    rails = rails_callback(BudgetConfig(max_hours=1e-9), [])
    control = TrainerControl()
    rails.on_step_end(None, TrainerState(), control)
    assert control.should_training_stop and rails.reason == "budget"
    rails = rails_callback(BudgetConfig(), [])
    control = TrainerControl()
    rails.on_step_end(None, TrainerState(), control)
    rails.on_log(None, TrainerState(global_step=3), control, logs={"loss": 0.69, "eval_rewards/margins": 0.1})
    assert not control.should_training_stop and rails.history == [{"step": 3, "loss": 0.69, "eval_rewards/margins": 0.1}]
    rails.on_log(None, TrainerState(global_step=4), control, logs={"loss": float("nan")})
    assert control.should_training_stop and rails.reason == "divergence"
    off = rails_callback(BudgetConfig(max_hours=1e-9), ["budget"])  # a guard switched off does not act
    control = TrainerControl()
    off.on_step_end(None, TrainerState(), control)
    assert not control.should_training_stop


def test_dpo_needs_pairs_and_sft_refuses_the_dpo_method(tmp_path):
    from typer.testing import CliRunner

    from tunerail.cli import app
    from tunerail.errors import TunerailError
    from tunerail.train import train

    cfg = tiny_config(tmp_path, method="dpo")
    with pytest.raises(TunerailError, match="preference pairs"):
        train(cfg, train_data=[], validation_data=None, out_dir=tmp_path / "run")
    yaml = tmp_path / "tunerail.yaml"
    yaml.write_text("criteria:\n  threshold: 0.5\ntrain:\n  method: dpo\ntracking:\n  enabled: false\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "-c", str(yaml), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2 and "--pairs" in result.output


def test_a_preference_run_is_linted_like_sft_before_the_model_loads(tmp_path, monkeypatch):
    """The lint's learning-rate rail on the method's own range: far above it refused (TRN001 error), above it warned."""
    from tunerail.errors import GuardrailError
    from tunerail.train.preference import _PreferenceRun, train_preference

    loads: list[object] = []
    monkeypatch.setattr(_PreferenceRun, "_model", lambda self, adapter: loads.append(adapter))
    cfg = tiny_config(tmp_path, method="dpo", learning_rate=2e-2)  # 200x dpo's usual ceiling of 1e-4
    with pytest.raises(GuardrailError, match="TRN001 learning_rate 2.0e-02 is far high for dpo") as err:
        train_preference(cfg, pairs=PairSet(planted_pairs(32), "planted"), out_dir=tmp_path / "far")
    assert loads == [] and "train.guards.lint: false" in err.value.problems[0].fix
    run = _PreferenceRun(tiny_config(tmp_path, method="orpo", learning_rate=5e-4), tmp_path / "near", None)
    assert [(f.code, f.severity.value) for f in run._lint(400, 100)] == [
        ("TRN001", "warning")
    ]  # 16 pairs would add TRN003/TRN007, as for SFT
    off = _PreferenceRun(tiny_config(tmp_path, method="dpo", learning_rate=2e-2, guards={"lint": False}), tmp_path / "off", None)
    assert [f.code for f in off._lint(400, 100)] == ["TRN008"]  # switched off, and said so


def test_dpo_refuses_an_adapter_folder_that_is_not_a_lora_adapter(tmp_path):
    from tunerail.errors import TunerailError
    from tunerail.train.preference import _PreferenceRun

    cfg = tiny_config(tmp_path, method="dpo")
    with pytest.raises(TunerailError, match="adapter_config.json") as err:
        _PreferenceRun(cfg, tmp_path / "run", None)._model(tmp_path)
    assert err.value.problems[0].field == "--adapter"


def test_pairs_are_checked_against_a_test_file_with_the_configs_columns(tmp_path):
    """A split of a mapped layout (CommonGen's concepts/sentence columns) is read as data.columns says, and its prompts leak."""
    from tunerail.config import TunerailConfig
    from tunerail.errors import GuardrailError
    from tunerail.train.preference import train_preference

    test = write_jsonl(
        tmp_path / "test.jsonl",
        [
            {"concepts": "dog, frisbee, catch", "sentence": "The dog catches a frisbee.", "set_id": "a"},
            {"concepts": "fold, paper, table", "sentence": "She folds paper at the table.", "set_id": "b"},
        ],
    )
    cfg = TunerailConfig.model_validate(
        {
            "task": "generation",
            "data": {
                "path": "x.jsonl",
                "format": "prompt_completion",
                "columns": {"prompt": "concepts", "completion": "sentence"},
                "group_column": "set_id",
            },
            "train": {"method": "dpo"},
            "tracking": {"enabled": False},
            "store": {"path": str(tmp_path / "store")},
        }
    )
    pairs = [
        PreferencePair("dog, frisbee, catch", "The dog catches a frisbee.", "A dog runs."),
        PreferencePair("fold, paper, table", "She folds paper.", "Paper."),
    ]
    with pytest.raises(GuardrailError, match="test_leak"):  # every pair is on a frozen test prompt: none left to train on
        train_preference(cfg, pairs=PairSet(pairs, "planted"), out_dir=tmp_path / "run", test=test)
    quarantined = (tmp_path / "run" / "preference_quarantine.jsonl").read_text(encoding="utf-8")
    assert quarantined.count("test_leak") == 2
