"""The OpenAI-compatible HTTP app: ``POST /v1/chat/completions`` (plain and SSE), ``GET /v1/models``, ``GET /health``.

Requests are rendered with the run's prompt template through :mod:`tunerail.prompting` (the one
renderer train and eval use), so the served model sees exactly the prompts it was trained on.
Errors carry OpenAI's body shape ``{"error": {"message", "type", "param", "code"}}`` with a 4xx
status: 400 bad schema or too long for the context, 401 missing/wrong key, 404 unknown model or
route; anything unexpected is a 500 with a generic message (the traceback goes to the server log,
never to the client). Generation goes through one queue (:mod:`tunerail.serve.batching`): concurrent
requests are decoded together in one batched ``generate`` (``serve.max_batch_size``, ``serve.batch_window_ms``).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Literal

from fastapi import Request  # module level: FastAPI resolves endpoint annotations from module globals
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunerail.serve.batching import Batcher, GenRequest
from tunerail.serve.traffic import TrafficLog

log = logging.getLogger("tunerail.serve")

# A request body larger than this is refused (413) before it is parsed or tokenised: a small
# model's context holds a few thousand tokens (~4 bytes each), so 1 MB is far above any prompt it
# could answer, and far below what stalls the server (6.8 MB took 6 s to tokenise).
MAX_BODY_BYTES = 1_000_000
# The traffic log keeps this much of each message, and the prompt's full length (``prompt_chars``):
# above any prompt that fits a small model's context, so `monitor` sees served prompts whole.
LOG_PROMPT_CHARS = 16_000


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: Any) -> Any:
        """Accept OpenAI's list-of-parts form when every part is text."""
        if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
            return "".join(str(p.get("text", "")) for p in value)
        return value


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat-completions request a single local model can honour."""

    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we do not use (user, stream_options...)
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # int64, as OpenAI documents; torch overflows past it


@dataclass
class ServeState:
    """What the app serves: the merged model, its identity, the template, labels and the log."""

    lm: Any  # tunerail.eval.generate.LoadedModel
    model_id: str
    template: Any
    labels: list[str]
    task: str
    traffic: TrafficLog
    max_new_tokens: int
    context_length: int
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_batch_size: int = 8  # serve.max_batch_size
    batch_window_ms: float = 10.0  # serve.batch_window_ms
    engine: Any = None  # tunerail.serve.engine.EngineBatcher when an engine generates (--engine llama.cpp|vllm)
    num_beams: int = 1  # eval.num_beams: a non-streamed greedy request is answered as the verdict scored it
    keyword_cover: bool = False  # a keyword-list prompt gets the beam using the most keywords (eval.decoding's keyword cover)


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def context_length(lm: Any) -> int:
    """Positions the model can attend to (``max_position_embeddings``), capped by the tokenizer's limit."""
    n = int(getattr(lm.model.config, "max_position_embeddings", 0) or 0) or 2048
    tok_max = getattr(lm.tokenizer, "model_max_length", None)
    return min(n, int(tok_max)) if isinstance(tok_max, int) and tok_max < 10**7 else n


# size: create_app: the routes are closures over one loaded model; a flat list of small handlers
def create_app(state: ServeState) -> Any:
    """The FastAPI app for ``state`` (tests build it directly; ``serve()`` runs it with uvicorn)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="tunerail serve", docs_url=None, redoc_url=None, openapi_url=None)
    batcher = state.engine or Batcher(state.lm, max_batch_size=state.max_batch_size, window_ms=state.batch_window_ms)
    app.state.batcher = batcher
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _schema_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in errors[:5])
        _log_error(state, request, 400, message)
        return JSONResponse(ApiError(400, message, param=".".join(loc) or None, code="invalid_request").body(), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(ApiError(exc.status_code, str(exc.detail), code=code).body(), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the traceback stays in the server log
        return JSONResponse(ApiError(500, "internal server error", type="server_error").body(), 500)

    def _authorise(request: Request) -> None:
        if state.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), state.api_key.encode()):
            _log_error(state, request, 401, "missing or invalid API key")
            raise ApiError(401, "missing or invalid API key (send Authorization: Bearer <key>)", code="invalid_api_key")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": state.model_id, "adapter": state.lm.fingerprint}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _authorise(request)
        return {"object": "list", "data": [{"id": state.model_id, "object": "model", "created": created, "owned_by": "tunerail"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        from starlette.concurrency import run_in_threadpool

        _authorise(request)
        body = await _read_body(request, state.max_body_bytes)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            _log_error(state, request, 400, "body is not valid JSON")
            raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "the request body must be a JSON object", code="invalid_request")
        try:
            req = ChatRequest.model_validate(payload)
        except Exception as exc:  # pydantic.ValidationError
            raise RequestValidationError(getattr(exc, "errors", lambda: [])()) from None
        if req.model != state.model_id:
            _log_error(state, request, 404, f"unknown model {req.model!r}", messages=req.messages)
            raise ApiError(
                404, f"the model {req.model!r} does not exist; this server serves {state.model_id!r}", param="model", code="model_not_found"
            )
        try:
            job = await run_in_threadpool(_prepare, state, req)  # tokenising a long prompt must not stall /health
        except ApiError as exc:
            _log_error(state, request, exc.status, exc.message, messages=req.messages)
            raise
        if req.stream:
            return StreamingResponse(
                _stream(state, batcher, job),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        result = await run_in_threadpool(_complete, state, batcher, job)
        return JSONResponse(result)

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes (header or stream)."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(
        413,
        f"the request body is larger than {limit:,} bytes; shorten the messages",
        param="messages",
        code="request_too_large",
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def clip(text: str, limit: int = LOG_PROMPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters for the traffic log (``prompt_chars`` records the full length)."""
    return text[:limit]


@dataclass
class _Job:
    id: str
    req: ChatRequest
    messages: list[dict[str, str]]
    prompt_text: str
    prompt_ids: list[int]
    max_new: int
    started: float
    gen: GenRequest


def _prepare(state: ServeState, req: ChatRequest) -> _Job:
    """Render the prompt with the run's template and check it fits the context."""
    from tunerail.data.records import Record
    from tunerail.data.records import RowRef
    from tunerail.prompting import build_messages, render_prompt

    turns = [m.model_dump() for m in req.messages]
    if turns[-1]["role"] != "user":
        raise ApiError(400, "the last message must come from the user", param="messages", code="invalid_request")
    last_user = turns[-1]["content"]
    record = Record(ref=RowRef(0, 1), format="chat", turns=turns + [{"role": "assistant", "content": ""}], prompt=last_user, completion="")
    messages = build_messages(record, state.template)
    text = render_prompt(state.lm.tokenizer, messages)
    ids = state.lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    max_new = req.max_completion_tokens or req.max_tokens or state.max_new_tokens
    if len(ids) + max_new > state.context_length:
        raise ApiError(
            400,
            f"this model's context is {state.context_length} tokens; the prompt has {len(ids)} and "
            f"max_tokens asks for {max_new} more ({len(ids) + max_new}); shorten the messages or lower max_tokens",
            param="messages",
            code="context_length_exceeded",
        )
    gen = GenRequest(list(ids), max_new, req.temperature, req.top_p, req.seed, prompt_text=text)
    return _Job(f"chatcmpl-{uuid.uuid4().hex[:24]}", req, messages, last_user, ids, max_new, time.perf_counter(), gen)


def _stops(req: ChatRequest) -> list[str]:
    return [req.stop] if isinstance(req.stop, str) else list(req.stop or [])


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _label_of(state: ServeState, text: str) -> str | None:
    from tunerail.metrics import match_label

    return match_label(text, state.labels) if state.labels else None


def _extra(state: ServeState, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"adapter": state.lm.fingerprint}
    if state.task == "classification":
        out["label"] = _label_of(state, text)
    return out


def _usage(job: _Job) -> dict[str, int]:
    completion = job.gen.completion_tokens
    return {"prompt_tokens": len(job.prompt_ids), "completion_tokens": completion, "total_tokens": len(job.prompt_ids) + completion}


def _beam_answer(state: ServeState, job: _Job) -> str:
    """The answer the eval's decoding gives (``eval.num_beams``, keyword cover): served as the verdict scored it."""
    from tunerail.eval.generate import generate_candidates
    from tunerail.keywords import keyword_prompt, most_covering

    found = generate_candidates(state.lm, [job.gen.prompt_text], max_new_tokens=job.max_new, num_beams=state.num_beams)[0]
    keywords = keyword_prompt(job.prompt_text) if state.keyword_cover else None  # the last user message
    text = most_covering(found, keywords) if keywords else found[0]
    used = len(state.lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    job.gen.completion_tokens = min(used + 1, job.max_new)  # the end-of-sequence token counts, as in the batcher
    return text


def _complete(state: ServeState, batcher: Batcher, job: _Job) -> dict[str, Any]:
    beams = state.num_beams > 1 and state.engine is None and not job.req.temperature
    text = _beam_answer(state, job) if beams else "".join(batcher.submit(job.gen).pieces())
    text, stopped = _cut(text.strip(), _stops(job.req))
    finish = "stop" if stopped or job.gen.completion_tokens < job.max_new else "length"
    body = {
        "id": job.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": state.model_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(job),
        "tunerail": _extra(state, text),
    }
    _log_ok(state, job, text, finish)
    return body


def _stream(state: ServeState, batcher: Batcher, job: _Job) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``; a chunk per decoded piece, as the batch produces it."""
    cancel = job.gen.cancel
    stops = _stops(job.req)
    text, finish, sent, logged = "", None, 0, False

    def chunk(delta: dict[str, Any], finish_reason: str | None, **extra: Any) -> str:
        body = {
            "id": job.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": state.model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""}, None)
        for piece in batcher.submit(job.gen).pieces():
            text += piece
            visible, stopped = _cut(text.lstrip(), stops)
            if len(visible) > sent:
                yield chunk({"content": visible[sent:]}, None)
                sent = len(visible)
            if stopped:
                finish = "stop"
                cancel.set()
                break
        final, _ = _cut(text.strip(), stops)
        if finish is None:
            finish = "stop" if job.gen.completion_tokens < job.max_new else "length"
        # logged before the last chunks: a client that has read [DONE] finds its request in the log
        _log_ok(state, job, final, finish)
        logged = True
        yield chunk({}, finish, usage=_usage(job), tunerail=_extra(state, final))
        yield "data: [DONE]\n\n"
    except GeneratorExit:  # client went away: stop generating, record what was produced
        cancel.set()
        if not logged:
            _log_ok(state, job, text.strip(), "cancelled")
        raise


def _log_ok(state: ServeState, job: _Job, text: str, finish: str) -> None:
    record = {
        "time": _now(),
        "id": job.id,
        "status": 200,
        "model": state.model_id,
        "adapter": state.lm.fingerprint,
        "stream": job.req.stream,
        "prompt": clip(job.prompt_text),
        "prompt_chars": len(job.prompt_text),
        "messages": _logged_messages(job.req.messages),
        "output": text,
        "finish_reason": finish,
        "latency_ms": round(1000 * (time.perf_counter() - job.started), 1),
        **{k: v for k, v in _usage(job).items() if k != "total_tokens"},
    }
    if state.task == "classification":
        record["label"] = _label_of(state, text)
    state.traffic.append(record)


def _log_error(state: ServeState, request: Any, status: int, message: str, messages: list[ChatMessage] | None = None) -> None:
    record: dict[str, Any] = {
        "time": _now(),
        "status": status,
        "model": state.model_id,
        "adapter": state.lm.fingerprint,
        "path": request.url.path,
        "error": message,
    }
    if messages:
        record["messages"] = _logged_messages(messages)
        record["prompt"] = clip(messages[-1].content)
        record["prompt_chars"] = len(messages[-1].content)
    state.traffic.append(record)


def _logged_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": clip(m.content)} for m in messages]


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
