"""`tunerail serve EXPORT_DIR` and `--engine`: an exported folder served like its run, traffic logged where
`monitor` reads it, whichever engine answers.

Run folders come from ``serve_fixtures.make_run`` (Banking77 rows, the tiny random Llama + adapter).
"""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
from serve_fixtures import make_run, running_server

from tunerail.errors import TunerailError

KEY = "sk-test-0123456789abcdef"
PII_PROMPT = "my card 4111 1111 1111 1111 was declined, mail me at jane.doe@gmail.com"
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("sse_starlette") is not None


def _exported(tmp_path, formats, **kw):
    from tunerail.export import export_model

    run = make_run(tmp_path, n_train=200, n_test=20, serve={"max_new_tokens": 8})
    export_model(run, formats=formats, verify=False, force=True, cache_dir=None, **kw)
    return run


def _chat(url, prompt, **kw):
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120)
    return client.chat.completions.create(model="banking-serve", messages=[{"role": "user", "content": prompt}], max_tokens=6, **kw)


@pytest.mark.slow
def test_a_merged_export_is_served_as_its_run_and_logged_in_the_runs_traffic(tmp_path, monkeypatch):
    from tunerail.eval.generate import load_model, model_fingerprint
    from tunerail.export.verify import next_token_agreement
    from tunerail.serve import build_state, load_run, read_traffic
    from tunerail.serve.app import ChatRequest, _prepare, create_app

    run = _exported(tmp_path, ["merged"])
    info = load_run(run / "export" / "merged")
    assert info.export_kind == "merged" and info.adapter_dir is None and info.base_model == str(run / "export" / "merged")
    assert load_run(run / "export").base_model == info.base_model  # RUN/export serves merged
    assert info.traffic_path == run / "traffic" / "traffic.jsonl" and info.model_id == "banking-serve"

    monkeypatch.setenv("TUNERAIL_TEST_KEY", KEY)
    state = build_state(info, api_key_env="TUNERAIL_TEST_KEY")
    with running_server(create_app(state)) as url:
        served = _chat(url, PII_PROMPT)
    state.traffic.close()
    # the exported weights answered, with the run's template, and they are the judged model's (base + adapter merged)
    job = _prepare(state, ChatRequest.model_validate({"model": "banking-serve", "messages": [{"role": "user", "content": PII_PROMPT}]}))
    assert "Route the banking query" in job.gen.prompt_text and served.usage.completion_tokens >= 1
    assert state.lm.fingerprint == model_fingerprint(str(run / "export" / "merged"), None)
    judged = load_model(info.train_json["base_model"], run / "train" / "adapter")
    assert next_token_agreement(state.lm, judged, [job.gen.prompt_text]) == 1.0
    records = [r for r in read_traffic(run / "traffic").records if r.get("status") == 200]
    assert len(records) == 1 and "[CARD_NUMBER]" in records[0]["prompt"] and records[0]["adapter"] == state.lm.fingerprint


def test_an_adapter_export_or_a_moved_export_is_refused_with_the_reason(tmp_path):
    from tunerail.serve import load_run

    run = _exported(tmp_path, ["adapter"])
    with pytest.raises(TunerailError, match="not a servable export"):
        load_run(run / "export" / "adapter")
    manifest = run / "export" / "export.json"
    recorded = json.loads(manifest.read_text(encoding="utf-8"))
    assert recorded["run_dir"] == str(run.resolve())
    recorded["run_dir"] = str(tmp_path / "gone")
    manifest.write_text(json.dumps(recorded), encoding="utf-8")
    (run / "export" / "merged").mkdir()
    with pytest.raises(TunerailError, match="the run this export came from is not here"):
        load_run(run / "export" / "merged")


def test_engines_that_are_not_installed_or_not_given_their_export_are_clear_errors(tmp_path, monkeypatch):
    from tunerail.serve import load_run
    from tunerail.serve.engine import check_engine, engine_command, start_for_run

    with pytest.raises(TunerailError, match="unknown engine 'tgi'"):
        check_engine("tgi")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(TunerailError, match="vllm engine is not installed") as err:
            check_engine("vllm")
        assert "GPU" in str(err.value.problems[0].fix)
    cmd = engine_command("vllm", tmp_path / "merged", 8123, 2048)
    assert cmd[:3] == ["vllm", "serve", str(tmp_path / "merged")] and "--max-model-len" in cmd and "127.0.0.1" in cmd
    if HAS_LLAMA_CPP:
        with pytest.raises(TunerailError, match="serves a gguf export"):
            start_for_run(load_run(make_run(tmp_path)), "llama.cpp")
    from tunerail.cli import main

    assert main(["serve", str(make_run(tmp_path / "cli")), "--engine", "tgi"]) == 2  # refused before any model loads


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python[server] is not installed")
def test_llama_cpp_engine_answers_behind_tunerails_key_masking_and_traffic_log(tmp_path, monkeypatch):
    import httpx

    from tunerail.serve import build_state, load_run, read_traffic
    from tunerail.serve.app import create_app

    run = _exported(tmp_path, ["gguf"], quant="q4_k_m")  # llama.cpp's own quantiser made it
    assert [p.name for p in (run / "export" / "gguf").glob("*.gguf")] == ["model-q4_k_m.gguf"]
    monkeypatch.setenv("TUNERAIL_TEST_KEY", KEY)
    state = build_state(load_run(run / "export" / "gguf"), api_key_env="TUNERAIL_TEST_KEY", engine="llama.cpp")
    try:
        with running_server(create_app(state)) as url:
            assert httpx.get(f"{url}/v1/models").status_code == 401  # tunerail's key guards the engine
            plain = _chat(url, PII_PROMPT)
            pieces = [c.choices[0].delta.content or "" for c in _chat(url, "how do I top up by card?", stream=True) if c.choices]
    finally:
        state.engine.engine.stop()
        state.traffic.close()
    assert state.engine.engine.proc.poll() is not None
    assert plain.usage.completion_tokens >= 1 and plain.choices[0].finish_reason in ("stop", "length")
    records = [r for r in read_traffic(run / "traffic").records if r.get("status") == 200]  # what `tunerail monitor` reads
    assert [r["stream"] for r in records] == [False, True]
    assert records[0]["output"] == plain.choices[0].message.content and records[1]["output"] == "".join(pieces).strip()
    raw = (run / "traffic" / "traffic.jsonl").read_text(encoding="utf-8")
    assert "4111" not in raw and "jane.doe" not in raw and records[0]["adapter"].startswith("llama.cpp-")
    assert os.path.getsize(state.engine.engine.log_path) > 0
