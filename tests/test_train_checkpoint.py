"""Resume state as one typed, versioned object; checkpoint folders built under a temp name and renamed."""

from __future__ import annotations

import json

import pytest


def _state(**over):
    from tunerail.findings import Finding, Severity
    from tunerail.data.records import RowRef
    from tunerail.train.budget import Estimate
    from tunerail.train.checkpoint import TrainState, capture_rng

    values = dict(
        step=7,
        history=[{"step": 0, "val_loss": 2.5, "tokens": 0}],
        elapsed=12.5,
        best_dir="best-step-000000",
        early={"patience": 3, "min_delta": 0.0, "best": 2.5, "best_step": 0, "bad_evals": 1},
        divergence={},
        optimizer={"state": {}, "param_groups": []},
        scheduler={"last_epoch": 7},
        rng=capture_rng(),
        run_id="abc",
        fingerprint="f" * 64,
        lost_seconds=1.5,
        estimate=Estimate(tokens=1000, steps=20, seconds=60.0, cost=0.0, per_token=1e-3, evals=3),
        estimate_basis="steps 2-5 measured",
        findings=[
            Finding("train.overfitting", Severity.WARNING, "val loss rose", "stop earlier", rows=[RowRef(3, 4, "t.jsonl")], code="TRN021")
        ],
    )
    values.update(over)
    return TrainState(**values)


def test_state_round_trips_typed_through_a_weights_only_load(tmp_path):
    import torch

    from tunerail.train.budget import Estimate
    from tunerail.train.checkpoint import STATE_VERSION, read_state, read_weights, write_state

    root = tmp_path / "checkpoints"
    root.mkdir()
    (root / "best-step-000000").mkdir()
    (root / "state-step-000003").mkdir()  # an older state: pruned
    name = write_state(root, _state(), {"w": torch.ones(2, 3)}, keep="best-step-000000")
    assert name == "state-step-000007" and json.loads((root / "latest.json").read_text()) == {"dir": name, "step": 7}
    assert sorted(p.name for p in root.iterdir()) == ["best-step-000000", "latest.json", "state-step-000007"]
    state, folder = read_state(root)
    assert folder == root / name and state.version == STATE_VERSION and state.step == 7 and state.run_id == "abc"
    assert isinstance(state.estimate, Estimate) and state.estimate.seconds == 60.0
    f = state.findings[0]
    assert (f.code, f.severity.value, f.rows[0].index, f.rows[0].file) == ("TRN021", "warning", 3, "t.jsonl")
    assert torch.equal(read_weights(folder)["w"], torch.ones(2, 3))


def test_a_checkpoint_without_the_newer_fields_still_loads(tmp_path):
    """States written before ``version``/``lost_seconds``/``estimate_basis``/``probe_seconds`` existed."""
    import torch

    from tunerail.train.checkpoint import read_state

    old = _state().to_plain()
    for key in ("version", "lost_seconds", "estimate_basis", "probe_seconds"):
        del old[key]
    folder = tmp_path / "state-step-000007"
    folder.mkdir()
    torch.save(old, folder / "trainer_state.pt")
    (tmp_path / "latest.json").write_text(json.dumps({"dir": folder.name, "step": 7}))
    state, _ = read_state(tmp_path)
    assert (state.version, state.lost_seconds, state.estimate_basis, state.probe_seconds) == (0, 0.0, "probe", None)


def test_a_state_missing_its_step_is_named_not_a_traceback(tmp_path):
    import torch

    from tunerail.errors import TunerailError
    from tunerail.train.checkpoint import read_state

    folder = tmp_path / "state-step-000007"
    folder.mkdir()
    torch.save({"history": []}, folder / "trainer_state.pt")
    (tmp_path / "latest.json").write_text(json.dumps({"dir": folder.name}))
    with pytest.raises(TunerailError, match="cannot be read") as err:
        read_state(tmp_path)
    assert "trainer_state.pt" in str(err.value) and "start a new --out" in str(err.value)


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    from tunerail.io import atomic_folder

    final = tmp_path / "adapter"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"] and (final / "old.txt").read_text() == "old"
    with atomic_folder(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["adapter"]
