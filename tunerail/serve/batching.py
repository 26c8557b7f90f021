"""The serve queue: concurrent requests decoded together in one batched ``generate``.

A background worker takes the oldest waiting request and waits for others that can share its
decoding settings (greedy ones together; sampled ones with equal temperature and top_p; a seeded
request alone, so its seed reproduces), up to ``max_batch_size``, for at most ``window_ms`` or one
decoding step of the previous batch, whichever is longer. A lone request so waits about one
token's time at most, while a client that sends its next request right after an answer (a few
ms, tens on a loaded machine) still joins the others instead of running alone and splitting the
clients into batches that take turns. The prompts are left-padded (every row's next token sits at
the last position) and run through one ``generate``. Each row's tokens reach its own request as
they are produced, so a streaming client sees them token by token and a plain request returns as
soon as its row ends: at its end-of-sequence token, its own ``max_tokens`` or its client's
cancel. A request arriving while a batch runs waits for the next batch (no continuous batching).

Why it pays on a CPU: one decoding step reads every weight once, whatever the number of rows, so
4 rows cost little more than 1 (``bench/monitor.py --serve-only`` measures both settings side by
side). ``max_batch_size: 1`` generates one request at a time, the unbatched path.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterator

_END = object()
MAX_STEP_WAIT_S = 1.0  # the adaptive window never exceeds this, however slow a step


@dataclass
class GenRequest:
    """One request's prompt and decoding settings; its text arrives through :meth:`pieces`."""

    prompt_ids: list[int]
    max_new: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0  # generated so far, the end-of-sequence token included
    batch_size: int = 0  # rows of the batch it ran in
    prompt_text: str = ""  # the rendered prompt (an engine behind tunerail takes text, not token ids)
    _out: queue.Queue[Any] = field(default_factory=queue.Queue, repr=False)

    @property
    def key(self) -> Hashable | None:
        """Requests with equal keys can share a batch; None runs alone (a seeded sample must reproduce)."""
        if not self.temperature:
            return ("greedy",)
        if self.seed is not None:
            return None
        return ("sample", self.temperature, self.top_p or 1.0)

    def pieces(self) -> Iterator[str]:
        """Decoded text pieces as the model produces them; raises the generation's error, if any."""
        while True:
            item = self._out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Batcher:
    """Collects requests arriving within ``window_ms``, up to ``max_batch_size``, and generates them together.

    The worker thread starts with the first request; :meth:`close` stops it after the batch in hand.
    ``batch_sizes`` counts the batches run by size (the bench and the tests read it).
    """

    def __init__(self, lm: Any, *, max_batch_size: int = 8, window_ms: float = 10.0):
        self.lm = lm
        self.max_batch_size = max_batch_size
        self.window_ms = window_ms
        self.batch_sizes: dict[int, int] = {}
        self.step_s = 0.0  # seconds per decoding step of the last batch (the adaptive part of the window)
        self._queue: deque[GenRequest] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, request: GenRequest) -> GenRequest:
        with self._cond:
            if self._closed:
                raise RuntimeError("the generation queue is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tunerail-serve-batcher", daemon=True)
                self._thread.start()
            self._queue.append(request)
            self._cond.notify_all()
        return request

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self) -> list[GenRequest] | None:
        """The next batch: the oldest request and those that share its key, waiting at most the window for more."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._queue[0]
            deadline = time.monotonic() + max(self.window_ms / 1000, min(self.step_s, MAX_STEP_WAIT_S))
            while first.key is not None:
                left = deadline - time.monotonic()
                if left <= 0 or sum(r.key == first.key for r in self._queue) >= self.max_batch_size:
                    break
                self._cond.wait(left)
            batch = [first] if first.key is None else [r for r in self._queue if r.key == first.key][: self.max_batch_size]
            for r in batch:
                self._queue.remove(r)
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            live = [r for r in batch if not r.cancel.is_set()]
            for r in batch:
                if r.cancel.is_set():
                    r._out.put(_END)
            if not live:
                continue
            self.batch_sizes[len(live)] = self.batch_sizes.get(len(live), 0) + 1
            rows = _Rows(self.lm.tokenizer, live)
            started = time.perf_counter()
            try:
                generate_batch(self.lm, live, rows)
            except BaseException as exc:  # every waiting client gets it (a 500), the worker goes on
                rows.fail(exc)
            rows.end()
            steps = max(r.completion_tokens for r in live)
            if steps:
                self.step_s = (time.perf_counter() - started) / steps


def generate_batch(lm: Any, batch: list[GenRequest], rows: Any) -> None:
    """One ``generate`` over left-padded prompts; ``rows`` streams each row's tokens and stops each row."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    width = max(len(r.prompt_ids) for r in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, r in enumerate(batch):
        ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
        mask[i, width - len(r.prompt_ids) :] = 1
    limits = torch.tensor([r.max_new for r in batch])

    class _RowStop(StoppingCriteria):
        """Per row: its own max_tokens reached, or its client cancelled (end-of-sequence is generate's own)."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            cancelled = torch.tensor([r.cancel.is_set() for r in batch])
            return ((input_ids.shape[1] - width >= limits) | cancelled).to(input_ids.device)

    first = batch[0]
    kwargs: dict[str, Any] = dict(
        input_ids=ids.to(lm.model.device),
        attention_mask=mask.to(lm.model.device),
        max_new_tokens=int(limits.max()),
        do_sample=bool(first.temperature),
        streamer=rows,
        use_cache=True,
        pad_token_id=pad,
        eos_token_id=tok.eos_token_id,
        stopping_criteria=StoppingCriteriaList([_RowStop()]),
    )
    if first.temperature:
        kwargs.update(temperature=first.temperature, top_p=first.top_p or 1.0)
        if first.seed is not None:
            torch.manual_seed(first.seed)
    with torch.inference_mode():
        lm.model.generate(**kwargs)


class _Rows:
    """transformers streamer for a batch: each row's new tokens, decoded, to its own request.

    ``generate`` first puts the prompt, then one token per row per step; a finished row keeps
    receiving pad tokens, which are ignored once the row has ended.
    """

    def __init__(self, tokenizer: Any, batch: list[GenRequest]):
        self.tok, self.batch = tokenizer, batch
        self.ids: list[list[int]] = [[] for _ in batch]
        self.sent = [0] * len(batch)
        self.done = [False] * len(batch)
        self.prompt_seen = False
        for r in batch:
            r.batch_size = len(batch)

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for i, t in enumerate(value.reshape(-1).tolist()):
            if self.done[i]:
                continue
            r = self.batch[i]
            self.ids[i].append(int(t))
            r.completion_tokens = len(self.ids[i])
            if t == self.tok.eos_token_id or len(self.ids[i]) >= r.max_new or r.cancel.is_set():
                self._finish(i)
            else:
                self._flush(i, final=False)

    def _flush(self, i: int, *, final: bool) -> None:
        text = self.tok.decode(self.ids[i], skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
            return
        if len(text) > self.sent[i]:
            self.batch[i]._out.put(text[self.sent[i] :])
            self.sent[i] = len(text)

    def _finish(self, i: int) -> None:
        self._flush(i, final=True)
        self.done[i] = True
        self.batch[i]._out.put(_END)

    def fail(self, exc: BaseException) -> None:
        for i, r in enumerate(self.batch):
            if not self.done[i]:
                self.done[i] = True
                r._out.put(exc)

    def end(self) -> None:
        """Called by ``generate`` when it stops (and again by the worker): every row still open ends here."""
        for i in range(len(self.batch)):
            if not self.done[i]:
                self._finish(i)
