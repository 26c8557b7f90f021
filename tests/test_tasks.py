"""One task-dispatch module for select, eval and the alternatives: scoring, k-shot picks, label checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tunerail import tasks
from tunerail.data.records import Record, RowRef
from tunerail.errors import TunerailError

ROOT = Path(__file__).resolve().parent.parent


def _record(i: int, prompt: str, completion: str, label: str | None = None) -> Record:
    return Record(RowRef(i, i + 1), "text_label" if label else "prompt_completion", None, prompt, completion, label)


def _banking(n: int, step: int = 1) -> list[Record]:
    with (ROOT / "examples" / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::step][:n]
    return [_record(i, r["text"], r["category"], r["category"]) for i, r in enumerate(rows)]


def test_score_dispatches_to_the_task_metric():
    recs = _banking(40, step=29)
    refs = [r.completion for r in recs]
    labels = sorted(set(refs))
    wrong = refs[1:] + refs[:1]
    s = tasks.score("classification", refs, wrong, labels, ranked=refs)
    assert s.per_example["accuracy"].mean() < 1.0 and s.per_example["accuracy_ranking"].mean() == 1.0
    lines = (ROOT / "examples" / "wnut17" / "posts.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    answers = [json.loads(x)["entities"] for x in lines]
    ext = tasks.score("extraction", answers, answers, [])
    assert ext.corpus["field_f1"](np.arange(30)) == 1.0 and "rougeL" not in ext.per_example
    gen = tasks.score("generation", answers, answers, [])
    assert gen.per_example["rougeL"].mean() == pytest.approx(1.0) and "field_f1" not in gen.corpus
    out = tasks.score_output("generation", answers, {"text": answers, "ref_logp": np.full(30, -3.0), "ref_tokens": np.full(30, 3)}, [])
    assert out.corpus["perplexity"](np.arange(30)) == pytest.approx(np.e)


def test_pick_shots_covers_several_labels_before_repeating_one():
    recs = _banking(200, step=3)
    shots = tasks.pick_shots(recs, 4)
    assert len(shots) == 4 and len({a for _, a in shots}) == 4
    assert len({r.label for r in recs[:4]}) < 4  # the file repeats labels early: the first rows would not do
    assert len(tasks.pick_shots(recs[:40], 8)) == len({r.label for r in recs[:40]}) < 8  # never a label twice
    gen = [_record(i, f"q{i}", f"a{i}") for i in range(10)]
    assert tasks.pick_shots(gen, 3) == [("q0", "a0"), ("q1", "a1"), ("q2", "a2")] and tasks.pick_shots(gen, 0) == []


def test_pick_shots_takes_one_answer_per_prompt_on_multi_reference_rows():
    """CommonGen-style rows (several human sentences per concept set, grouped together): k shots, k concept sets."""
    sets = [("coat, sidewalk, walk, wear", 4), ("fold, paper, sit, table", 3), ("dog, frisbee, throw", 2)]
    gen = [_record(i, p, f"{p} sentence {j}") for i, (p, j) in enumerate((p, j) for p, n in sets for j in range(n))]
    shots = tasks.pick_shots(gen, 3)
    assert [q for q, _ in shots] == [p for p, _ in sets]
    assert [a for _, a in shots] == [f"{p} sentence 0" for p, _ in sets]


def test_check_labels_names_the_missing_label_column():
    rows = [_record(i, f"text {i}", "") for i in range(5)]
    with pytest.raises(TunerailError) as err:
        tasks.check_labels("classification", rows)
    assert err.value.problems[0].field == "data.columns" and "label" in err.value.problems[0].fix
    tasks.check_labels("generation", rows)  # only classification needs labels
    tasks.check_labels("classification", _banking(5))


def test_select_and_eval_use_the_shared_module():
    """No copy left behind: select's and eval's modules hold no scorer or shot picker of their own."""
    import tunerail.eval.recipe as eval_recipe
    import tunerail.select.probes as probes

    import inspect

    for mod in (eval_recipe, probes):
        assert not hasattr(mod, "model_scores") and not hasattr(mod, "pick_shots") and not hasattr(mod, "_score")
    assert "TfidfVectorizer" not in inspect.getsource(probes)  # select's baselines come from eval's registry
