"""LLM-as-judge: pairwise base-vs-tuned comparison with a rubric, asked in BOTH answer orders.

Why both orders: LLM judges prefer one position (often the first). Each pair is judged as
(A=base, B=tuned) and (A=tuned, B=base); a verdict counts as a win only when it survives the
swap, and the share of pairs whose winner survives is reported as *position consistency*.
Replies that cannot be parsed are counted (``parse_failures``), never dropped silently: a judge
that fails to answer is itself a finding.

Backends: any OpenAI-compatible ``/v1/chat/completions`` endpoint (stdlib ``urllib``; the key is
read from the environment variable named in the config and is never logged, stored or put in
an exception), or a local Hugging Face chat model.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence

from tunerail.errors import Problem, TunerailError


class ChatClient(Protocol):
    def complete(self, messages: list[dict[str, str]]) -> str: ...


class JudgeRequestError(Exception):
    """One judge call failed (HTTP error, timeout); message carries no credentials."""


@dataclass
class OpenAIChatClient:
    """Minimal OpenAI-compatible chat client (``POST {endpoint}/chat/completions``)."""

    endpoint: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    temperature: float = 0.0

    def complete(self, messages: list[dict[str, str]]) -> str:
        url = self.endpoint.rstrip("/") + "/chat/completions"
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise JudgeRequestError(f"judge endpoint answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JudgeRequestError(f"judge endpoint unreachable: {type(reason).__name__}") from None
        except ValueError:
            raise JudgeRequestError("judge endpoint returned a body that is not JSON") from None
        try:
            return str(payload["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise JudgeRequestError("judge endpoint reply has no choices[0].message.content") from None


@dataclass
class HFChatClient:
    """A local Hugging Face chat model as the judge (greedy, no network)."""

    model_name: str
    max_new_tokens: int = 200
    _lm: Any = None

    def complete(self, messages: list[dict[str, str]]) -> str:
        from tunerail.eval.generate import generate, load_model

        if self._lm is None:
            self._lm = load_model(self.model_name)
        from tunerail.prompting import render_prompt

        prompt = render_prompt(self._lm.tokenizer, messages)
        return generate(self._lm, [prompt], max_new_tokens=self.max_new_tokens, batch_size=1)[0]


def make_client(judge_config: Any) -> ChatClient:
    """Client from ``eval.judge``: an endpoint URL means HTTP, otherwise ``model`` is a local HF model."""
    if judge_config.endpoint:
        if not judge_config.model:
            raise TunerailError(
                Problem(
                    "the judge endpoint needs a model name",
                    field="eval.judge.model",
                    fix="set eval.judge.model to the model served at the endpoint",
                )
            )
        return OpenAIChatClient(judge_config.endpoint, judge_config.model, judge_config.api_key_env, judge_config.timeout)
    if judge_config.model:
        return HFChatClient(judge_config.model)
    raise TunerailError(
        Problem(
            "the judge is enabled but has neither an endpoint nor a model",
            field="eval.judge",
            fix="set eval.judge.endpoint (+ model), or eval.judge.model to a local model",
        )
    )


SYSTEM = (
    "You are a strict evaluator. Compare two answers to the same input. "
    "Score each answer from 1 (bad) to 5 (excellent) on every criterion, then name the better answer. "
    "Reply with JSON only."
)


def build_judge_messages(
    rubric: dict[str, str], input_text: str, reference: str | None, answer_a: str, answer_b: str
) -> list[dict[str, str]]:
    criteria = "\n".join(f"- {name}: {question}" for name, question in rubric.items())
    shape = json.dumps({"A": {k: 1 for k in rubric}, "B": {k: 1 for k in rubric}, "winner": "A|B|tie"})
    ref = f"\n\nReference answer:\n{reference}" if reference else ""
    user = (
        f"Criteria:\n{criteria}\n\nInput:\n{input_text}{ref}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\n"
        f"Reply with exactly this JSON shape: {shape}"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_JSON = re.compile(r"\{.*\}", re.DOTALL)


def parse_judgement(text: str, rubric: dict[str, str]) -> dict[str, Any] | None:
    """``{"A": {crit: score}, "B": {...}, "winner": "A"|"B"|"tie"}`` or None if malformed.

    Accepts a JSON object anywhere in the reply (judges wrap it in prose or code fences);
    rejects missing criteria, scores outside 1-5 and unknown winners.
    """
    match = _JSON.search(text or "")
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    winner = {"A": "A", "B": "B", "TIE": "tie"}.get(str(data.get("winner", "")).strip().upper())
    if winner is None:
        return None
    out: dict[str, Any] = {"winner": winner}
    for side in ("A", "B"):
        scores = data.get(side)
        if not isinstance(scores, dict):
            return None
        clean = {}
        for name in rubric:
            value = scores.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 5:
                return None
            clean[name] = float(value)
        out[side] = clean
    return out


@dataclass
class JudgeResult:
    """Aggregates over pairs; ``items`` keeps every raw verdict for the review export."""

    pairs: int
    calls: int
    parse_failures: int
    request_failures: int
    position_consistency: float | None  # share of fully parsed pairs whose winner survives the swap
    first_position_rate: float | None  # share of parsed verdicts naming answer A (0.5 = unbiased)
    tuned_win_rate: float  # consistent tuned wins / pairs
    base_win_rate: float
    tie_or_inconsistent_rate: float
    mean_scores: dict[str, dict[str, float]]  # {"base": {crit: mean}, "tuned": {...}}
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pairwise_judge(
    client: ChatClient,
    rubric: dict[str, str],
    inputs: Sequence[str],
    references: Sequence[str | None],
    base_outputs: Sequence[str],
    tuned_outputs: Sequence[str],
) -> JudgeResult:
    """Judge every pair twice (base first, then tuned first) and aggregate."""
    calls = parse_failures = request_failures = 0
    first_pos = parsed_verdicts = 0
    consistent = both_parsed = tuned_wins = base_wins = 0
    sums: dict[str, dict[str, list[float]]] = {"base": {k: [] for k in rubric}, "tuned": {k: [] for k in rubric}}
    items = []
    for i, (inp, ref, b, t) in enumerate(zip(inputs, references, base_outputs, tuned_outputs)):
        winners: list[str | None] = []
        for order in (("base", "tuned"), ("tuned", "base")):
            calls += 1
            answers = {"base": b, "tuned": t}
            try:
                reply = client.complete(build_judge_messages(rubric, inp, ref, answers[order[0]], answers[order[1]]))
            except JudgeRequestError as exc:
                request_failures += 1
                winners.append(None)
                items.append({"index": i, "order": "/".join(order), "error": str(exc)})
                continue
            verdict = parse_judgement(reply, rubric)
            items.append({"index": i, "order": "/".join(order), "raw": reply[:2000], "parsed": verdict is not None})
            if verdict is None:
                parse_failures += 1
                winners.append(None)
                continue
            parsed_verdicts += 1
            first_pos += verdict["winner"] == "A"
            side = {"A": order[0], "B": order[1]}
            for letter, model in side.items():
                for name, score in verdict[letter].items():
                    sums[model][name].append(score)
            winners.append("tie" if verdict["winner"] == "tie" else side[verdict["winner"]])
        if None not in winners:
            both_parsed += 1
            if winners[0] == winners[1]:
                consistent += 1
                tuned_wins += winners[0] == "tuned"
                base_wins += winners[0] == "base"
    n = len(inputs)
    return JudgeResult(
        pairs=n,
        calls=calls,
        parse_failures=parse_failures,
        request_failures=request_failures,
        position_consistency=consistent / both_parsed if both_parsed else None,
        first_position_rate=first_pos / parsed_verdicts if parsed_verdicts else None,
        tuned_win_rate=tuned_wins / n if n else 0.0,
        base_win_rate=base_wins / n if n else 0.0,
        tie_or_inconsistent_rate=(n - tuned_wins - base_wins) / n if n else 0.0,
        mean_scores={m: {k: (sum(v) / len(v) if v else float("nan")) for k, v in crit.items()} for m, crit in sums.items()},
        items=items,
    )
