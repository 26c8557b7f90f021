"""A prompted model behind any OpenAI-compatible endpoint: "do we need to fine-tune, or does a hosted model already do it?"

Each ``eval.hosted`` entry answers the test rows with the messages the base model's rows are built
from (:func:`tunerail.prompting.build_messages`: the eval's prompt template and the same k-shot
examples), so the endpoint applies its own chat template to the same conversation. The replies are
scored by the task scorer and compared with the paired bootstrap like every other row.

Notes
-----
- Requests go through the official ``openai`` client: ``timeout`` per request and ``retries`` with
  its exponential backoff on timeouts, connection errors, 429 and 5xx; at most ``concurrency`` are
  in flight. A request that still fails fails the whole alternative (warning EVL052 with the first
  error and how many failed): a partial score would compare the fine-tune on other rows.
- The key is read from ``api_key_env`` at call time; it is never cached, logged or put in an error.
- Replies are cached by the endpoint, model, settings and the hash of every request's messages; a
  failed run is never cached.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.alternatives.base import Fitted
from tunerail.prompting import build_messages
from tunerail.tasks import pick_shots

LIBRARY = "OpenAI-compatible endpoint (openai client)"
NO_KEY = "no-key"  # the client insists on a key; a server without auth ignores it


def hosted_messages(
    records: Sequence[Record], template: Any, shots: Sequence[tuple[str, str]], spec: Any, shot_pool: Sequence[Record]
) -> tuple[list[list[dict[str, str]]], int]:
    """The chat messages of every test row for ``spec`` and the number of examples in them.

    ``spec.k_shot`` None reuses ``shots`` (the base model's k-shot examples); a number picks that
    many from ``shot_pool`` by the same rule (:func:`tunerail.tasks.pick_shots`).
    """
    examples = list(shots) if spec.k_shot is None else pick_shots(shot_pool, spec.k_shot)
    return [build_messages(r, template, examples) for r in records], len(examples)


def _label(spec: Any) -> str:
    return f"{spec.model} via {spec.base_url}"


def fit_hosted(spec: Any, messages: list[list[dict[str, str]]], n_shots: int, max_tokens: int, cache: Path | None) -> Fitted:
    """Ask ``spec``'s endpoint for every row (or read the cached replies); a failure comes back with ``error`` set."""
    name = f"hosted:{spec.name}"
    ship = f"call {spec.model} at {spec.base_url} with the eval's prompt and {n_shots} example(s) (no training, pay per call)"
    tokens = spec.max_tokens or max_tokens
    settings = {"base_url": spec.base_url.rstrip("/"), "model": spec.model, "max_tokens": tokens, "temperature": spec.temperature}
    key = G.cache_key("hosted", settings, G.data_hash(messages))
    t = time.perf_counter()
    try:
        replies, hit = G.cached(cache, key, lambda: _ask_all(spec, messages, tokens), inputs={"stage": "hosted", **settings})
    except HostedError as exc:
        return Fitted(name, _label(spec), LIBRARY, [], time.perf_counter() - t, {}, str(exc), ship, kind="hosted")
    seconds = time.perf_counter() - t
    details = {**settings, "k_shot": n_shots, "requests": len(messages), "cached": hit, "fit_seconds": round(seconds, 2)}
    return Fitted(name, _label(spec), LIBRARY, [str(r) for r in replies], seconds, details, None, ship, kind="hosted")


class HostedError(Exception):
    """The endpoint could not answer every row; the message names the endpoint, never the key."""


def _ask_all(spec: Any, messages: list[list[dict[str, str]]], max_tokens: int) -> list[str]:
    """Every row's reply, ``spec.concurrency`` requests at a time; raise HostedError if any failed."""
    from openai import OpenAI

    key = os.environ.get(spec.api_key_env) if spec.api_key_env else NO_KEY
    if not key:
        raise HostedError(f"environment variable {spec.api_key_env} (eval.hosted {spec.name}.api_key_env) is not set")
    client = OpenAI(base_url=spec.base_url, api_key=key, timeout=spec.timeout, max_retries=spec.retries)

    def ask(conversation: list[dict[str, str]]) -> str | Exception:
        try:
            reply = client.chat.completions.create(
                model=spec.model,
                messages=conversation,  # type: ignore[arg-type]  # plain role/content dicts, which the client sends as they are
                max_tokens=max_tokens,
                temperature=spec.temperature,
            )
            return reply.choices[0].message.content or ""
        except Exception as exc:  # any client, HTTP or reply-shape error: counted and reported below
            return exc

    try:
        with ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
            out = list(pool.map(ask, messages))
    finally:
        client.close()
    failed = [o for o in out if isinstance(o, Exception)]
    if failed:
        first = failed[0]
        raise HostedError(
            f"{len(failed)} of {len(out)} requests to {spec.base_url} failed after {spec.retries} retries; "
            f"first: {type(first).__name__}: {_clean(str(first), key)}"
        )
    return [str(o) for o in out]


def _clean(message: str, key: str) -> str:
    """An error message without the key (a server may echo the header) and cut to one line."""
    if key and key != NO_KEY:
        message = message.replace(key, "***")
    return message.splitlines()[0][:300] if message else ""
