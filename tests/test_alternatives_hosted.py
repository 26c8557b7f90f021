"""The hosted alternative (``eval.hosted``) against a local `tunerail serve` of the tiny model on 127.0.0.1,
an unreachable endpoint (EVL052), a wrong or missing key (never reported), and EVL050 naming a hosted model."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402
from serve_fixtures import banking_shuffled, make_run, running_server  # noqa: E402

from tunerail import tasks  # noqa: E402
from tunerail.config import CriteriaConfig, HostedModel, TunerailConfig, load_config  # noqa: E402
from tunerail.eval import alternatives as A  # noqa: E402
from tunerail.eval.verdict import VerdictInputs, decide  # noqa: E402
from tunerail.findings import Severity  # noqa: E402

KEY = "sk-hosted-test-0123456789abcdef"
KEY_ENV = "TUNERAIL_HOSTED_TEST_KEY"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny base model (no adapter) served by `tunerail serve`'s app on a free loopback port, with a key."""
    from tunerail.serve import build_state
    from tunerail.serve.app import create_app

    run = make_run(tmp_path_factory.mktemp("hosted"), n_train=40, n_test=10, adapter=False, serve={"max_new_tokens": 8})
    os.environ[KEY_ENV] = KEY
    state = build_state(run, api_key_env=KEY_ENV)
    with running_server(create_app(state)) as url:
        yield run, state, url
    state.traffic.close()


def _records(run: Path, config: TunerailConfig, name: str):
    from tunerail.eval.inputs import load_rows as _load

    return _load(config, run / "split" / f"{name}.jsonl")[0]


def _spec(url: str, **kw) -> HostedModel:
    return HostedModel(
        **{"name": "local", "base_url": f"{url}/v1", "model": "banking-serve", "api_key_env": KEY_ENV, "max_tokens": 8, **kw}
    )


def test_hosted_rows_are_the_served_models_answers_to_the_eval_prompt_and_are_cached(served, tmp_path):
    """Same template and k-shot examples as the base model's k-shot row: the served base model answers exactly as locally."""
    from tunerail.eval.generate import generate, load_model
    from tunerail.prompting import pick_template, prompt_for
    from tunerail.serve import read_traffic

    run, state, url = served
    config = load_config(run / "tunerail.yaml")
    test, train = _records(run, config, "test"), _records(run, config, "train")
    shots = tasks.pick_shots(train, 2)
    template = pick_template(config)
    spec = _spec(url, concurrency=3)
    messages, n_shots = A.hosted_messages(test, template, shots, spec, train)
    assert n_shots == 2 and messages[0][1]["content"] == shots[0][0]  # system, then the examples
    fitted = A.fit_hosted(spec, messages, n_shots, 64, tmp_path / "cache")
    assert fitted.error is None and fitted.kind == "hosted" and fitted.name == "hosted:local"
    assert fitted.label == f"banking-serve via {url}/v1" and fitted.details["max_tokens"] == 8
    lm = load_model(str(cached_tiny_pair()[0]))
    local = [generate(lm, [prompt_for(lm.tokenizer, r, template, shots)], max_new_tokens=8, batch_size=1)[0] for r in test]
    assert fitted.predictions == local
    logged = len(read_traffic(run / "traffic").records)
    assert logged >= len(test)
    again = A.fit_hosted(spec, messages, n_shots, 64, tmp_path / "cache")
    assert again.details["cached"] and again.predictions == fitted.predictions
    assert len(read_traffic(run / "traffic").records) == logged  # read from the cache: no request sent
    # k_shot picks its own number of examples from the same rows, by the same rule
    zero, n_zero = A.hosted_messages(test, template, shots, _spec(url, k_shot=0), train)
    assert n_zero == 0 and [m["role"] for m in zero[0]] == ["system", "user"]


def test_eval_compares_the_hosted_model_side_by_side_and_never_writes_the_key(served, tmp_path):
    import tunerail

    run, _, url = served
    model, adapter = cached_tiny_pair()
    raw = json.loads((run / "tunerail.yaml").read_text(encoding="utf-8"))
    raw["eval"] = {
        "forgetting": False,
        "bootstrap": 200,
        "perplexity": False,
        "baselines": False,
        "hosted": [
            _spec(url, k_shot=1).model_dump(),
            {"name": "down", "base_url": f"http://127.0.0.1:{_closed_port()}/v1", "model": "m", "retries": 0},
        ],
    }
    raw["criteria"] = {"threshold": 0.0, "margin": 1.0}
    cfg = TunerailConfig.model_validate(raw)
    rows = banking_shuffled()
    res = tunerail.evaluate(
        cfg,
        test_data=write_jsonl(tmp_path / "test.jsonl", rows[:10]),
        train_data=write_jsonl(tmp_path / "train.jsonl", rows[100:140]),
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        cache_dir=None,
    )
    by = {b["name"]: b for b in res.baselines}
    row = by["hosted:local"]
    assert row["kind"] == "hosted" and row["label"] == f"banking-serve via {url}/v1" and row["gain"] is not None
    assert row["details"]["k_shot"] == 1 and "hosted:local" in res.metrics
    assert res.alternatives["hosted_seconds"] > 0 and res.alternatives["fit_seconds"] == 0  # nothing fitted here (baselines off)
    assert by["hosted:down"]["error"] and by["hosted:down"]["kind"] == "hosted"
    failed = [f for f in res.findings if f.code == "EVL052"]
    assert [f.details["baseline"] for f in failed] == ["hosted:down"]
    assert any(f.code == "EVL050" and f.details["baseline"] == "hosted:local" for f in res.findings)
    for path in (res.report_json, res.report_html):
        text = Path(path).read_text(encoding="utf-8")
        assert KEY not in text and "hosted:local" in text


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_endpoint_is_reported_as_evl052_not_dropped(tmp_path):
    # localhost, not 127.0.0.1: findings mask IP addresses (report/redact.py)
    spec = HostedModel(name="down", base_url=f"http://localhost:{_closed_port()}/v1", model="gpt-x", retries=1, timeout=2)
    messages = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    fitted = A.fit_hosted(spec, messages, 0, 16, tmp_path / "cache")
    assert fitted.predictions == [] and fitted.kind == "hosted"
    assert fitted.error.startswith(f"3 of 3 requests to {spec.base_url} failed after 1 retries; first: APIConnectionError")
    assert not list((tmp_path / "cache").glob("*.json"))  # a failure is never cached
    from tunerail.eval.compare import failed_row as _failed_row

    inputs = _inputs([], baselines_failed=[_failed_row(fitted)])
    _, findings = decide(CriteriaConfig(metric="field_f1", threshold=0.0, margin=1.0), inputs)
    warn = [f for f in findings if f.code == "EVL052"]
    assert len(warn) == 1 and Severity(warn[0].severity) == Severity.WARNING and warn[0].details["baseline"] == "hosted:down"
    assert f"gpt-x via {spec.base_url}" in warn[0].message


def test_a_wrong_or_missing_key_fails_without_showing_the_key(served, tmp_path, monkeypatch):
    _, _, url = served
    monkeypatch.setenv("TUNERAIL_HOSTED_WRONG", "sk-wrong-key-do-not-print-0000")
    messages = [[{"role": "user", "content": "hello"}]]
    wrong = A.fit_hosted(_spec(url, api_key_env="TUNERAIL_HOSTED_WRONG"), messages, 0, 8, tmp_path)
    assert "AuthenticationError" in wrong.error and "sk-wrong-key" not in wrong.error and KEY not in wrong.error
    assert "1 of 1 requests" in wrong.error
    missing = A.fit_hosted(_spec(url, api_key_env="TUNERAIL_HOSTED_UNSET_VARIABLE"), messages, 0, 8, tmp_path)
    assert missing.error == "environment variable TUNERAIL_HOSTED_UNSET_VARIABLE (eval.hosted local.api_key_env) is not set"


def _inputs(table, baselines_failed=()):
    from tunerail.eval.compare import estimates as _estimates

    refs = ['{"person": ["Ann"]}', '{"person": ["Bo"]}'] * 20
    tuned = _estimates(tasks.score("extraction", refs, ["{}"] * 40, []), 40, 300)
    return VerdictInputs(
        "field_f1",
        tuned,
        tuned,
        None,
        forgetting={"worst": 0.0, "relative_change": {}},
        criteria_state="frozen",
        baselines=[b for b in table if b.get("gain") is not None],
        baselines_failed=list(baselines_failed),
    )


def test_evl050_names_the_hosted_model_its_score_and_how_to_ship_it():
    """A hosted model that answers every row right beats a fine-tune planted to answer nothing."""
    from tunerail.eval.compare import Draws, baseline_table as _baseline_table, estimates as _estimates

    refs = [json.dumps({"person": [f"P{i}"], "location": []}) for i in range(40)]
    hosted = A.Fitted("hosted:gptx", "gpt-x via https://api.example.com/v1", "OpenAI-compatible endpoint", refs, 1.0, kind="hosted")
    hosted.ship = "call gpt-x at https://api.example.com/v1 with the eval's prompt and 3 example(s) (no training, pay per call)"
    scored = {"tuned": tasks.score("extraction", refs, ["{}"] * 40, []), "base": tasks.score("extraction", refs, ["{}"] * 40, [])}
    scored["hosted:gptx"] = tasks.score("extraction", refs, hosted.predictions, [])
    metrics = {m: _estimates(s, 40, 300) for m, s in scored.items()}
    table = _baseline_table(scored, metrics, "field_f1", Draws(300), [hosted], [], {}, set())
    row = next(b for b in table if b["name"] == "hosted:gptx")
    assert row["kind"] == "hosted"
    inputs = _inputs(table)
    inputs.tuned = metrics["tuned"]
    verdict, findings = decide(CriteriaConfig(metric="field_f1", threshold=0.0, margin=1.0), inputs)
    failed = next(f for f in findings if f.code == "EVL050" and f.details["baseline"] == "hosted:gptx")
    assert verdict == "NOT READY" and Severity(failed.severity) == Severity.ERROR
    assert failed.fix.startswith("gpt-x via https://api.example.com/v1 scores 1.000 (CI 1.000-1.000) with the same prompt: ship it")
    assert "no training, pay per call" in failed.fix and "trained on your data" not in failed.fix


def test_hosted_names_must_be_unique_and_well_formed():
    from pydantic import ValidationError

    one = {"name": "a", "base_url": "http://x/v1", "model": "m"}
    with pytest.raises(ValidationError, match="used twice: a"):
        TunerailConfig.model_validate({"eval": {"hosted": [one, one]}})
    with pytest.raises(ValidationError, match="pattern"):
        TunerailConfig.model_validate({"eval": {"hosted": [{**one, "name": "a b"}]}})
    with pytest.raises(ValidationError, match="extra"):
        TunerailConfig.model_validate({"eval": {"hosted": [{**one, "api_key": "sk-inline"}]}})  # keys only by variable
    with pytest.raises(ValidationError, match="not an http"):
        TunerailConfig.model_validate({"eval": {"hosted": [{**one, "base_url": "api.openai.com/v1"}]}})
