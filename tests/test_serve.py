"""`tunerail serve`: the official openai client (plain and streaming) against the app on loopback,
the traffic log (every request, masked, crash-safe, rotated) and OpenAI-style 4xx errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest
from serve_fixtures import make_run, running_server

from tunerail.serve import build_state, read_traffic
from tunerail.serve.app import create_app
from tunerail.serve.traffic import TrafficLog

PII_PROMPT = "my card 4111 1111 1111 1111 was declined, mail me at jane.doe@gmail.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("serve"), n_train=200, n_test=20, serve={"max_new_tokens": 8})
    os.environ["TUNERAIL_TEST_KEY"] = "sk-test-0123456789abcdef"
    state = build_state(run, api_key_env="TUNERAIL_TEST_KEY")
    with running_server(create_app(state)) as url:
        yield run, state, url
    state.traffic.close()


def _client(url, key="sk-test-0123456789abcdef"):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client_plain_and_streaming_are_logged_and_masked(served):
    run, state, url = served
    client = _client(url)
    assert [m.id for m in client.models.list().data] == ["banking-serve"]
    resp = client.chat.completions.create(model="banking-serve", messages=[{"role": "user", "content": PII_PROMPT}], max_tokens=6)
    assert resp.object == "chat.completion" and resp.choices[0].message.role == "assistant"
    assert resp.usage.prompt_tokens > 10 and 1 <= resp.usage.completion_tokens <= 6
    extra = resp.model_extra["tunerail"]
    assert "label" in extra and extra["adapter"] == state.lm.fingerprint  # classification run: label (None if no match)

    pieces, final = [], None
    stream = client.chat.completions.create(
        model="banking-serve", stream=True, max_tokens=6, messages=[{"role": "user", "content": "how do I top up by card?"}]
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            final = chunk
    assert final is not None and final.choices[0].finish_reason in ("stop", "length")
    streamed = "".join(pieces)

    records = [r for r in read_traffic(run / "traffic").records if r.get("status") == 200]
    assert len(records) == 2
    plain, streaming = records
    assert plain["output"] == resp.choices[0].message.content and not plain["stream"]
    assert streaming["stream"] and streaming["output"] == streamed.strip()
    assert streaming["prompt"] == "how do I top up by card?"
    # PII masked by the doctor's masker before it reached the disk
    raw = (run / "traffic" / "traffic.jsonl").read_text(encoding="utf-8")
    assert "4111" not in raw and "jane.doe" not in raw
    assert "[CARD_NUMBER]" in plain["prompt"] and "[EMAIL]" in plain["prompt"]
    assert plain["messages"][0]["content"] == plain["prompt"]
    for key in ("time", "latency_ms", "prompt_tokens", "completion_tokens", "model", "adapter"):
        assert key in plain
    assert plain["completion_tokens"] == resp.usage.completion_tokens


def test_run_template_is_applied(served):
    from tunerail.serve.app import ChatRequest, _prepare

    _, state, _ = served
    job = _prepare(state, ChatRequest.model_validate({"model": "banking-serve", "messages": [{"role": "user", "content": "hi"}]}))
    text = state.lm.tokenizer.decode(job.prompt_ids)
    assert "Route the banking query. Answer with the intent label only." in text and "hi" in text


def test_bad_requests_get_openai_errors_and_4xx(served):
    run, state, url = served
    import openai

    client = _client(url)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="banking-serve", messages=[{"role": "user", "content": "word " * 3000}])
    assert exc.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.AuthenticationError):
        _client(url, key="wrong").chat.completions.create(model="banking-serve", messages=[{"role": "user", "content": "x"}])

    headers = {"Authorization": "Bearer sk-test-0123456789abcdef"}
    for body in (
        {"model": "banking-serve"},
        {"model": "banking-serve", "messages": [{"role": "robot", "content": "x"}]},
        {"model": "banking-serve", "messages": [{"role": "user", "content": "x"}], "max_tokens": -3},
        {"model": "banking-serve", "messages": [{"role": "assistant", "content": "x"}]},
        [1, 2],
    ):
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert r.status_code == 400, (body, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"] and "Traceback" not in r.text
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", headers=headers, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.get(f"{url}/v1/nothing", headers=headers, timeout=30)
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok"
    errors = [r for r in read_traffic(run / "traffic").records if r.get("status", 200) >= 400]
    assert {404, 400, 401} <= {r["status"] for r in errors}


def test_missing_key_variable_fails_before_listening(tmp_path):
    from tunerail.errors import TunerailError

    run = make_run(tmp_path, n_train=50, n_test=10)
    os.environ.pop("TUNERAIL_UNSET_KEY", None)
    with pytest.raises(TunerailError, match="TUNERAIL_UNSET_KEY"):
        build_state(run, api_key_env="TUNERAIL_UNSET_KEY")


def test_log_rotates_by_size(tmp_path):
    log = TrafficLog(tmp_path / "traffic.jsonl", max_bytes=2000, backups=2, fsync=False)
    for i in range(150):
        log.append({"i": i, "prompt": "x" * 50})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["traffic.jsonl", "traffic.jsonl.1", "traffic.jsonl.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    got = [r["i"] for r in read_traffic(tmp_path / "traffic.jsonl").records]
    assert got == list(range(got[0], 150)) and len(got) < 150  # oldest dropped beyond 2 backups


WRITER = textwrap.dedent("""
    import sys
    from tunerail.serve.traffic import TrafficLog
    log = TrafficLog(sys.argv[1], max_bytes=10**9, mask_pii=False, fsync=False)
    i = 0
    while True:
        log.append({"i": i, "prompt": "q" * (i % 5000), "output": "a"})
        if i == 0:
            print("ready", flush=True)
        i += 1
""")


def test_kill_9_during_writes_loses_at_most_the_record_being_written(tmp_path):
    """Three writers killed with SIGKILL mid-stream: each loses at most the record it was writing
    (a multi-page write can be cut by the kill), every other record is whole and in order."""
    path = tmp_path / "traffic.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(__import__("pathlib").Path(__file__).parent.parent)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)
        ),
    }
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        import time

        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # simulate a write cut short (full disk) on top: a line without its newline
    with open(path, "ab") as handle:
        handle.write(b'{"i": 99999999, "prompt": "torn')
    read = read_traffic(path)
    assert 1 <= read.skipped <= 4 and len(read.records) > 100  # the planted cut + at most one per kill
    for rec in read.records:
        assert rec["prompt"] == "q" * (rec["i"] % 5000)
    runs: list[list[int]] = []
    for rec in read.records:  # each writer counts from 0: its records must be 0, 1, 2, ... with no gap
        if rec["i"] == 0:
            runs.append([])
        runs[-1].append(rec["i"])
    assert len(runs) == 3 and all(run == list(range(len(run))) for run in runs)


def test_a_writer_seals_a_cut_record_before_appending(tmp_path):
    """A record cut by a crash has no newline; the next writer must not glue its first record onto it."""
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(b'{"i": 0, "prompt": "whole"}\n{"i": 1, "prompt": "cu')
    log = TrafficLog(path, mask_pii=False, fsync=False)
    log.append({"i": 2, "prompt": "after"})
    log.close()
    read = read_traffic(path)
    assert [r["i"] for r in read.records] == [0, 2] and read.skipped == 1


def test_cli_serve_bad_run_folder_is_exit_2(tmp_path):
    from tunerail.cli import main

    assert main(["serve", str(tmp_path / "nope")]) == 2
    (tmp_path / "run").mkdir()
    assert main(["serve", str(tmp_path / "run")]) == 2  # no tunerail.yaml anywhere near


@pytest.mark.slow
def test_smollm2_answers_through_the_openai_client(tmp_path):
    """The real demo base model (bundled SmolLM2-135M-Instruct) served end to end."""
    run = make_run(tmp_path, n_train=100, n_test=10, adapter=False)
    (run / "train" / "train.json").write_text(json.dumps({"base_model": "bundled:smollm2"}), encoding="utf-8")
    state = build_state(run)
    assert state.lm.name == "bundled:smollm2"
    with running_server(create_app(state)) as url:
        client = _client(url, key="unused")
        resp = client.chat.completions.create(
            model="banking-serve", max_tokens=12, messages=[{"role": "user", "content": "I lost my card, what should I do?"}]
        )
    state.traffic.close()
    assert resp.choices[0].message.content.strip()
    logged = [r for r in read_traffic(run / "traffic").records if r.get("status") == 200]
    assert len(logged) == 1 and logged[0]["output"] == resp.choices[0].message.content


def _jobs(state, queries):
    from tunerail.serve.app import ChatRequest, _prepare

    return [
        _prepare(state, ChatRequest.model_validate({"model": "banking-serve", "messages": [{"role": "user", "content": q}]}))
        for q in queries
    ]


def test_concurrent_requests_decode_in_one_batch_with_the_answers_they_get_alone(served):
    from tunerail.serve.batching import Batcher, GenRequest

    _, state, _ = served
    queries = ["how do I top up by card?", "my card was declined", "where is my refund", "I lost my card, what now?"]
    limits = [8, 3, 8, 5]  # each row stops at its own max_tokens inside the shared batch

    def answers(batcher):
        reqs = [batcher.submit(GenRequest(j.prompt_ids, m)) for j, m in zip(_jobs(state, queries), limits)]
        out = ["".join(r.pieces()) for r in reqs]
        batcher.close()
        return out, [r.completion_tokens for r in reqs], batcher.batch_sizes

    alone, alone_tokens, alone_sizes = answers(Batcher(state.lm, max_batch_size=1))
    together, together_tokens, together_sizes = answers(Batcher(state.lm, max_batch_size=4, window_ms=5000))
    assert alone_sizes == {1: 4} and together_sizes == {4: 1}  # one left-padded generate for the four
    assert together == alone and all(together)
    assert together_tokens == alone_tokens and together_tokens[1] == 3


def test_concurrent_clients_are_batched_and_each_logged(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from serve_fixtures import running_server

    run = make_run(tmp_path, n_train=200, n_test=20, serve={"max_new_tokens": 6, "max_batch_size": 4, "batch_window_ms": 1000})
    state = build_state(run)
    assert (state.max_batch_size, state.batch_window_ms) == (4, 1000)
    state.batch_window_ms = 60_000  # an upper bound only (the batch starts when the 4th request arrives): room for a loaded CI machine
    queries = ["how do I top up by card?", "my card was declined", "where is my refund"]
    app = create_app(state)
    with running_server(app) as url:
        client = _client(url, key="unused")

        def plain(q):
            return (
                client.chat.completions.create(model="banking-serve", messages=[{"role": "user", "content": q}]).choices[0].message.content
            )

        def streamed(q):
            stream = client.chat.completions.create(model="banking-serve", stream=True, messages=[{"role": "user", "content": q}])
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(plain, q) for q in queries] + [pool.submit(streamed, queries[0])]
            texts = [f.result() for f in futures]
    state.traffic.close()
    assert app.state.batcher.batch_sizes == {4: 1}  # three plain requests and a streaming one, decoded together
    assert texts[3] == texts[0] and all(texts)  # the streaming row gets the same greedy answer as the plain one
    logged = [r for r in read_traffic(run / "traffic").records if r.get("status") == 200]
    assert sorted(r["output"] for r in logged) == sorted(texts)
    assert sorted(r["stream"] for r in logged) == [False, False, False, True]


def test_the_window_stretches_to_one_decoding_step_so_a_late_client_still_joins(served):
    import time

    from tunerail.serve.batching import Batcher, GenRequest

    _, state, _ = served
    (job,) = _jobs(state, ["my card was declined"])
    batcher = Batcher(state.lm, max_batch_size=2, window_ms=0)
    first = batcher.submit(GenRequest(job.prompt_ids, 2))
    "".join(first.pieces())
    deadline = time.monotonic() + 30
    while batcher.step_s == 0 and time.monotonic() < deadline:  # set once generate returns, just after the row ended
        time.sleep(0.01)
    assert batcher.step_s > 0 and batcher.batch_sizes == {1: 1}  # measured on the batch it ran
    batcher.step_s = 30.0  # a slow step (a loaded CPU): the next batch waits up to that long for company
    early = batcher.submit(GenRequest(job.prompt_ids, 2))
    time.sleep(0.5)  # a client coming back late, well past window_ms = 0
    late = batcher.submit(GenRequest(job.prompt_ids, 2))
    assert "".join(early.pieces()) == "".join(late.pieces())
    batcher.close()
    assert batcher.batch_sizes == {1: 1, 2: 1} and early.batch_size == late.batch_size == 2


def test_a_greedy_request_is_answered_with_the_verdicts_beams_and_keyword_cover(tmp_path, monkeypatch):
    """eval.num_beams > 1: the served answer is the one the verdict scored (the beam using the most keywords)."""
    import dataclasses

    from fastapi.testclient import TestClient

    from tunerail.eval import generate as G

    run = make_run(tmp_path, n_train=20, n_test=5, serve={"max_new_tokens": 8})
    state = dataclasses.replace(build_state(run), num_beams=2, keyword_cover=True)
    asked: list[int] = []

    def beams(lm, prompts, *, max_new_tokens, num_beams, **kw):
        asked.append(num_beams)
        return [["A dog runs on the grass.", "A dog catches a frisbee."] for _ in prompts]

    monkeypatch.setattr(G, "generate_candidates", beams)

    def ask(content: str, **extra: object) -> str:
        body = {"model": state.model_id, "messages": [{"role": "user", "content": content}], **extra}
        with TestClient(create_app(state)) as client:
            reply = client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        return reply.json()["choices"][0]["message"]["content"]

    assert ask("dog, catch, frisbee") == "A dog catches a frisbee."
    assert ask("Tell me about dogs.") == "A dog runs on the grass."  # not a keyword list: the likeliest beam
    assert asked == [2, 2]
    ask("dog, catch, frisbee", temperature=0.7)  # sampled: the batcher, not the beams
    assert asked == [2, 2]
    state.traffic.close()
