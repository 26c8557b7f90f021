"""`tunerail run` with model.candidates: select runs first, the recommended model is trained, the
choice and its reason are recorded; a pinned non-commercial model.base is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from select_fixtures import card_copy
from test_pipeline import _project
from tunerail.errors import GuardrailError
from tunerail.pipeline import run


def _with_candidates(tmp_path: Path, candidates: list[str], base: str | None = None) -> Path:
    path = _project(tmp_path)
    config = json.loads(path.read_text())
    config["model"]["candidates"] = candidates
    if base is None:
        del config["model"]["base"]
    else:
        config["model"]["base"] = base
    config["select"] = {"sample_rows": 24, "few_shot": 1, "probe_steps": 1, "bootstrap": 200}
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


@pytest.mark.slow
def test_run_selects_then_trains_the_recommended_model(tmp_path):
    good = str(card_copy(tmp_path / "models" / "good", "license: mit"))
    nc = str(card_copy(tmp_path / "models" / "nc", "license: cc-by-nc-4.0"))
    result = run(_with_candidates(tmp_path, [nc, good]), out_dir=tmp_path / "run")
    assert [s.name for s in result.steps] == ["doctor", "split", "leakage", "select", "train", "eval"]
    assert result.model_choice["trained"] == good and not result.model_choice["pinned"]
    assert good in result.model_choice["reason"]
    trained = json.loads((tmp_path / "run" / "train" / "train.json").read_text())
    assert trained["base_model"] == good
    assert json.loads((tmp_path / "run" / "select" / "choice.json").read_text())["trained"] == good
    assert (tmp_path / "run" / "select" / "select.json").exists()


@pytest.mark.slow
def test_run_refuses_a_pinned_non_commercial_base(tmp_path):
    good = str(card_copy(tmp_path / "models" / "good", "license: mit"))
    nc = str(card_copy(tmp_path / "models" / "nc", "license: cc-by-nc-4.0"))
    with pytest.raises(GuardrailError, match="SEL001"):
        run(_with_candidates(tmp_path, [nc, good], base=nc), out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "train" / "train.json").exists()
