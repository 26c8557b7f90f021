"""`tunerail export`: each format loaded back and re-scored; broken exports caught; the verdict gates it.

Run folders come from ``serve_fixtures.make_run`` (Banking77 rows, the tiny random Llama + adapter);
a READY or NOT READY eval/report.json is written beside them as `tunerail eval` would.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from serve_fixtures import make_run

from tunerail.errors import TunerailError


def _ready_run(tmp_path: Path, verdict: str = "READY") -> Path:
    run = make_run(tmp_path, n_train=200, n_test=40)
    report = {
        "verdict": verdict,
        "metric": "accuracy",
        "rows": 40,
        "metrics": {"tuned": {"accuracy": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 40}}},
        "baselines": [
            {"name": "tfidf_logreg", "label": "TF-IDF + logistic regression", "estimate": {"value": 0.3, "low": 0.2, "high": 0.4}}
        ],
        "criteria": {"metric": "accuracy", "threshold": 0.5, "margin": 0.05},
        "frozen": {"test_hash": "ab" * 32},
        "lineage": {"split_id": "split-123", "checkpoint_id": "ckpt-456"},
        "findings": [],
    }
    (run / "eval").mkdir()
    (run / "eval" / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return run


@pytest.mark.slow
def test_merged_and_adapter_exports_load_back_and_score_as_the_judged_model(tmp_path):
    from tunerail.export import export_model

    run = _ready_run(tmp_path)
    result = export_model(run, cache_dir=None)
    assert result.ok, [f.message for f in result.findings]
    out = run / "export"
    assert (out / "merged" / "model.safetensors").exists() and (out / "merged" / "tokenizer_config.json").exists()
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (out / "adapter" / "tokenizer_config.json").exists()
    for kind in ("merged", "adapter"):
        scores = result.formats[kind]["scores"]
        assert scores["next_token_agreement"] >= 0.95
        assert scores["difference"]["low"] <= 0 <= scores["difference"]["high"]
        assert {f.code for f in result.findings if f.details.get("kind") == kind} == {"EXP005"}
        card = (out / kind / "README.md").read_text(encoding="utf-8")
        assert "base_model:" in card and "READY" in card and "split-123" in card and "TF-IDF + logistic regression" in card
    recorded = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert recorded["ok"] and recorded["forced"] is False and set(recorded["formats"]) == {"merged", "adapter"}


def test_not_ready_run_needs_force_and_force_is_recorded(tmp_path, monkeypatch):
    from tunerail.export import export_model
    from tunerail.export import recipe

    run = _ready_run(tmp_path, verdict="NOT READY")
    with pytest.raises(TunerailError, match="NOT READY.*--force|--force"):
        export_model(run, formats=["adapter"], verify=False)
    assert not (run / "export").exists()
    monkeypatch.setattr(recipe, "_licence", lambda base: "apache-2.0")
    result = export_model(run, formats=["adapter"], verify=False, force=True)
    assert result.forced
    assert json.loads((run / "export" / "export.json").read_text())["forced"] is True
    assert "--force" in (run / "export" / "adapter" / "README.md").read_text(encoding="utf-8")


def test_a_run_never_evaluated_is_refused_and_an_unknown_gguf_quant_is_named(tmp_path):
    from tunerail.export import export_model

    run = make_run(tmp_path, n_train=50, n_test=10)
    with pytest.raises(TunerailError, match="never evaluated"):
        export_model(run, verify=False)
    with pytest.raises(TunerailError, match="GGUF quantisation 'q3_x'"):
        export_model(run, formats=["gguf"], quant="q3_x", verify=False)


@pytest.mark.slow
def test_a_changed_chat_template_and_a_corrupted_tensor_are_caught(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file, save_file

    from tunerail.export import export_model
    from tunerail.export import recipe

    original = recipe._write_merged

    def broken(run, folder):
        original(run, folder)
        plain = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
        jinja = folder / "chat_template.jinja"  # where recent transformers save it; older ones keep it in tokenizer_config.json
        if jinja.exists():
            jinja.write_text(plain)
        cfg = json.loads((folder / "tokenizer_config.json").read_text())
        if "chat_template" in cfg:
            cfg["chat_template"] = plain
            (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
        tensors = load_file(str(folder / "model.safetensors"))
        rng = torch.Generator().manual_seed(0)
        for name in tensors:
            if ".layers." in name and name.endswith("proj.weight"):  # a damaged shard: random values of the same scale
                tensors[name] = torch.randn(tensors[name].shape, generator=rng) * tensors[name].std()
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    monkeypatch.setattr(recipe, "_write_merged", broken)
    result = export_model(_ready_run(tmp_path), formats=["merged"], cache_dir=None)
    codes = {f.code for f in result.findings}
    assert not result.ok
    assert {"EXP001", "EXP006"} <= codes, [f.message for f in result.findings]


def test_a_score_drop_beyond_the_margin_is_an_error_and_rounding_is_not():
    from tunerail.eval.rescore import Rescored
    from tunerail.scoring import score_classification
    from tunerail.export.verify import score_findings

    labels = [f"intent_{i}" for i in range(4)]
    refs = [labels[i % 4] for i in range(200)]
    judged = refs[:150] + [labels[(i + 1) % 4] for i in range(150, 200)]  # 75 %
    same_but_two = judged[:2][::-1] + judged[2:]
    dropped = refs[:100] + [labels[(i + 1) % 4] for i in range(100, 200)]  # 50 %

    def scored(outputs):
        return Rescored("m", outputs, score_classification(refs, outputs, labels), False, 0.0)

    _, near = score_findings("merged", scored(same_but_two), scored(judged), "accuracy", 0.05, 500)
    assert [f.code for f in near] == ["EXP005"]
    _, far = score_findings("merged", scored(dropped), scored(judged), "accuracy", 0.05, 500)
    assert [f.code for f in far] == ["EXP003"] and far[0].details["difference"]["value"] == pytest.approx(-0.25)


def test_push_plan_lists_the_card_and_weights_without_the_network(tmp_path):
    from tunerail.export.hub import push_to_hub, upload_plan

    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "README.md").write_text("---\nbase_model: x\n---\n# card\n")
    (folder / "model.safetensors").write_bytes(b"\0" * 10)
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw["private"]))

        def upload_folder(self, **kw):
            calls.append(("upload", kw["repo_id"], sorted(p.name for p in Path(kw["folder_path"]).iterdir())))
            return type("Commit", (), {"oid": "abc123"})()

    plan = push_to_hub(folder, "team/model", api=FakeApi())
    assert plan["files"] == ["README.md", "model.safetensors"] and plan["commit"] == "abc123"
    assert calls == [("create", "team/model", True), ("upload", "team/model", ["README.md", "model.safetensors"])]
    (folder / "README.md").unlink()
    with pytest.raises(TunerailError, match="model card"):
        upload_plan(folder, "team/model")


def test_model_card_names_the_hub_base_the_forgetting_and_the_alternatives():
    from tunerail.config import TunerailConfig
    from tunerail.export.card import build_card

    cfg = TunerailConfig.model_validate({"project": "demo", "task": "extraction", "criteria": {"threshold": 0.4}})
    report = {
        "verdict": "NOT READY",
        "metric": "field_f1",
        "rows": 258,
        "metrics": {"tuned": {"field_f1": {"value": 0.485, "low": 0.435, "high": 0.543}}},
        "baselines": [
            {"name": "crf", "label": "CRF", "library": "sklearn-crfsuite", "estimate": {"value": 0.477, "low": 0.419, "high": 0.538}}
        ],
        "forgetting": {"worst": -0.0417, "budget": 0.15},
        "findings": [{"severity": "error", "code": "EVL050", "message": "not beaten: CRF"}],
    }
    export = {"base_model": "bundled:smollm2", "kind": "merged", "forced": True, "scores": {}}
    card = str(build_card(cfg, report, export, "apache-2.0"))
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card and "dequantised from the bundled GGUF" in card
    assert "| CRF | sklearn-crfsuite | 0.477 | 0.419-0.538 |" in card and "EVL050: not beaten: CRF" in card
    assert "worst relative change -4.2%" in card and "--force" in card


@pytest.mark.slow
def test_gguf_export_loads_back_from_the_file_alone_and_scores_as_the_judged_model(tmp_path):
    import gguf

    from tunerail.export import export_model

    run = _ready_run(tmp_path)
    result = export_model(run, formats=["gguf"], quant="q8_0", cache_dir=None)
    assert result.ok, [f.message for f in result.findings]
    folder = run / "export" / "gguf"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "model-q8_0.gguf"]  # the merged folder it was made from is gone
    reader = gguf.GGUFReader(str(folder / "model-q8_0.gguf"))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32" and "output.weight" not in types  # tied
    scores = result.formats["gguf"]["scores"]
    assert result.formats["gguf"]["quant"] == "q8_0" and scores["next_token_agreement"] >= 0.95
    assert scores["difference"]["low"] <= 0 <= scores["difference"]["high"]
    assert {f.code for f in result.findings} == {"EXP005"}
    if importlib.util.find_spec("llama_cpp") is not None:  # llama.cpp ran the file: same tokens, same next tokens
        assert scores["llama_cpp"]["checked"] and scores["llama_cpp"]["same_tokens"] == 1.0
    assert "library_name: gguf" in (folder / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_corrupted_gguf_tensor_is_caught(tmp_path, monkeypatch):
    import gguf
    import numpy as np

    from tunerail.export import export_model
    from tunerail.export import recipe

    original = recipe._write_gguf

    def damaged(run, folder, quant):
        original(run, folder, quant)
        reader = gguf.GGUFReader(str(folder / "model-f16.gguf"), "r+")
        rng = np.random.default_rng(0)
        for t in reader.tensors:
            if t.name.startswith("blk.") and t.tensor_type.name == "F16":  # a damaged block: random values of the same scale
                t.data[...] = (rng.standard_normal(t.data.shape) * float(np.std(t.data.astype(np.float32)))).astype(np.float16)
        reader.data.flush()

    monkeypatch.setattr(recipe, "_write_gguf", damaged)
    result = export_model(_ready_run(tmp_path), formats=["gguf"], quant="f16", cache_dir=None)
    assert not result.ok
    assert "EXP006" in {f.code for f in result.findings}, [f.message for f in result.findings]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_a_gguf_that_llama_cpp_tokenises_otherwise_than_training_is_caught(tmp_path):
    import gguf
    from eval_fixtures import cached_tiny_pair

    from tunerail.eval.generate import load_model
    from tunerail.export.gguf import convert
    from tunerail.export.verify import runtime_findings

    model_dir, _ = cached_tiny_pair()
    lm = load_model(str(model_dir), None)
    prompts = [
        lm.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in ("my card was declined", "how do I top up by transfer?")
    ]
    folder = tmp_path / "gguf"
    folder.mkdir()
    path = convert(model_dir, folder / "model-f16.gguf", "f16")
    scores, findings = runtime_findings(folder, lm, prompts, batch_size=2)
    assert findings == [] and scores["same_tokens"] == 1.0 and scores["next_token_agreement"] == 1.0
    reader = gguf.GGUFReader(str(path), "r+")  # the file now asks for a BOS: the template's own BOS (<|im_start|>) is dropped
    reader.fields["tokenizer.ggml.add_bos_token"].parts[-1][0] = True
    reader.data.flush()
    del reader
    scores, findings = runtime_findings(folder, lm, prompts, batch_size=2)
    assert findings == [] and scores["same_tokens"] == 1.0  # one BOS, as training; before engine_prompt: two, EXP007
    reader = gguf.GGUFReader(str(path), "r+")  # ... and the BOS it adds is a token training never put before a prompt
    reader.fields["tokenizer.ggml.bos_token_id"].parts[-1][0] = lm.tokenizer.eos_token_id
    reader.data.flush()
    del reader
    scores, findings = runtime_findings(folder, lm, prompts, batch_size=2)
    assert [f.code for f in findings] == ["EXP007"] and scores["same_tokens"] == 0.0


def test_a_prompt_whose_template_opened_with_the_bos_reaches_llama_cpp_without_it_when_the_file_adds_one():
    from tunerail.export.gguf import engine_prompt
    from tunerail.serve.batching import GenRequest
    from tunerail.serve.engine import EngineBatcher, EngineProcess

    llama3 = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
    assert engine_prompt(llama3, "<|begin_of_text|>", True) == llama3[len("<|begin_of_text|>") :]
    assert engine_prompt(llama3, "<|begin_of_text|>", False) == llama3  # the file adds none: the template's stays
    assert engine_prompt("plain text", "<|begin_of_text|>", True) == "plain text"  # llama.cpp adds the one BOS
    engine = EngineProcess("llama.cpp", None, "http://127.0.0.1:1", Path("engine.log"))  # type: ignore[arg-type]  # body() reads the name only
    request = GenRequest(prompt_ids=[], max_new=8, prompt_text=llama3)
    body = EngineBatcher(engine, bos=(True, "<|begin_of_text|>")).body(request)
    assert body["prompt"].startswith("<|start_header_id|>") and body["temperature"] == 0.0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_smollm2_converted_runs_in_llama_cpp_as_in_transformers(tmp_path):
    """The tiny random model cannot show a Q/K layout bug (its attention barely matters); SmolLM2-135M can:
    without the rotary permutation llama.cpp picked another next token on 3 of these 4 prompts."""
    from tunerail.eval.generate import load_model
    from tunerail.export.gguf import convert
    from tunerail.export.verify import runtime_findings
    from tunerail.models import resolve_model

    lm = load_model("bundled:smollm2", None)
    questions = ("my card was declined at the shop", "how do I top up my account by bank transfer?", "Translate to French: good morning")
    prompts = [
        lm.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in (*questions, "What is the capital of Italy?")
    ]
    folder = tmp_path / "gguf"
    folder.mkdir()
    convert(Path(resolve_model("bundled:smollm2")), folder / "model-f16.gguf", "f16")
    scores, findings = runtime_findings(folder, lm, prompts, batch_size=4)
    assert findings == [] and scores["same_tokens"] == 1.0 and scores["next_token_agreement"] == 1.0
