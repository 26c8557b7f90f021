"""LLM-as-judge against a real local OpenAI-compatible HTTP server started by the test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import JudgeServer, judge_answers as _answers  # noqa: E402

from tunerail.config import JudgeConfig
from tunerail.eval.judge import OpenAIChatClient, make_client, pairwise_judge, parse_judgement

RUBRIC = {"correctness": "Is it correct?", "tone": "Is the tone right?"}
SECRET = "sk-test-DO-NOT-LEAK-1234"


def _verdict(winner: str, a: int = 4, b: int = 2) -> str:
    return json.dumps({"A": {"correctness": a, "tone": a}, "B": {"correctness": b, "tone": b}, "winner": winner})


INPUTS = [f"question {i}" for i in range(6)]
REFS = [f"reference {i}" for i in range(6)]
BASE = [f"base answer {i}" for i in range(6)]
TUNED = [f"tuned answer {i}" for i in range(6)]


def test_fair_judge_prefers_tuned_consistently_and_key_is_sent_not_leaked(monkeypatch):
    monkeypatch.setenv("TUNERAIL_TEST_JUDGE_KEY", SECRET)

    def fair(text, _n):  # always picks the tuned answer, whatever its position, in prose + code fence
        a, _ = _answers(text)
        winner = "A" if a.startswith("tuned") else "B"
        return f"Here is my judgement:\n```json\n{_verdict(winner, 5 if winner == 'A' else 2, 2 if winner == 'A' else 5)}\n```"

    with JudgeServer(fair) as srv:
        client = make_client(JudgeConfig(enabled=True, endpoint=srv.url, model="judge-x", api_key_env="TUNERAIL_TEST_JUDGE_KEY"))
        res = pairwise_judge(client, RUBRIC, INPUTS, REFS, BASE, TUNED)
    assert res.calls == 12 and len(srv.requests) == 12
    assert srv.requests[0]["path"] == "/v1/chat/completions" and srv.requests[0]["body"]["model"] == "judge-x"
    assert srv.requests[0]["auth"] == f"Bearer {SECRET}"
    # each pair was asked in both orders
    firsts = [_answers(r["body"]["messages"][-1]["content"])[0].split()[0] for r in srv.requests]
    assert firsts == ["base", "tuned"] * 6
    assert res.position_consistency == 1.0 and res.tuned_win_rate == 1.0 and res.base_win_rate == 0.0
    assert res.first_position_rate == 0.5
    assert res.mean_scores["tuned"]["correctness"] == 5.0 and res.mean_scores["base"]["correctness"] == 2.0
    assert res.parse_failures == 0
    assert SECRET not in json.dumps(res.to_dict())


def test_order_biased_judge_has_zero_consistency_and_no_winner():
    with JudgeServer(lambda text, n: _verdict("A")) as srv:
        res = pairwise_judge(OpenAIChatClient(srv.url, "biased"), RUBRIC, INPUTS, REFS, BASE, TUNED)
    assert res.position_consistency == 0.0
    assert res.first_position_rate == 1.0
    assert res.tuned_win_rate == 0.0 and res.base_win_rate == 0.0 and res.tie_or_inconsistent_rate == 1.0


def test_parse_failures_and_http_errors_are_counted(monkeypatch):
    monkeypatch.setenv("TUNERAIL_TEST_JUDGE_KEY", SECRET)
    bad = {
        1: "I think A is better.",  # no JSON
        2: '{"A": {"correctness": 9, "tone": 3}, "B": {"correctness": 1, "tone": 1}, "winner": "A"}',  # out of range
        3: '{"A": {"correctness": 4}, "B": {"correctness": 2, "tone": 2}, "winner": "A"}',  # missing criterion
        4: '{"A": {"correctness": 4, "tone": 4}, "B": {"correctness": 2, "tone": 2}, "winner": "C"}',  # bad winner
        5: 500,  # server error
        6: "{not json at all}",
    }

    def flaky(text, n):
        if n in bad:
            return bad[n]
        a, _ = _answers(text)
        return _verdict("A" if a.startswith("tuned") else "B")

    with JudgeServer(flaky) as srv:
        client = OpenAIChatClient(srv.url, "flaky", api_key_env="TUNERAIL_TEST_JUDGE_KEY")
        res = pairwise_judge(client, RUBRIC, INPUTS, REFS, BASE, TUNED)
    assert res.parse_failures == 5 and res.request_failures == 1 and res.calls == 12
    # pairs 0-2 lost a verdict; pairs 3-5 are fully parsed and consistent
    assert res.position_consistency == 1.0 and res.tuned_win_rate == pytest.approx(3 / 6)
    errors = [i["error"] for i in res.items if "error" in i]
    assert errors == ["judge endpoint answered HTTP 500 Internal Server Error"]
    assert SECRET not in json.dumps(res.to_dict())


def test_unreachable_endpoint_is_a_counted_failure():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = pairwise_judge(
        OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "none", timeout=2), RUBRIC, INPUTS[:1], REFS[:1], BASE[:1], TUNED[:1]
    )
    assert res.request_failures == 2 and res.position_consistency is None


def test_parse_judgement_accepts_tie_and_rejects_booleans():
    ok = parse_judgement('{"A": {"correctness": 3, "tone": 3}, "B": {"correctness": 3, "tone": 3}, "winner": "tie"}', RUBRIC)
    assert ok["winner"] == "tie"
    assert parse_judgement('{"A": {"correctness": true, "tone": 3}, "B": {"correctness": 3, "tone": 3}, "winner": "A"}', RUBRIC) is None
