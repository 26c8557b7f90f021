"""`tunerail serve --engine llama.cpp|vllm`: an inference engine's own server, fronted by tunerail.

tunerail stays in front of whichever engine answers, so what the monitor and the security rely on
does not change: the run's prompt rendering (:mod:`tunerail.prompting`, the text train and eval
used), the API key, the masked traffic log, the OpenAI error shapes. The engine only generates. It
is started as a child process on 127.0.0.1 and a free port, without a key (only this process talks
to it), and stopped with tunerail.

| engine         | serves                     | started as |
| llama.cpp      | a GGUF export (CPU or GPU) | ``python -m llama_cpp.server --model F.gguf --host 127.0.0.1 --port P --n_ctx N`` (llama-cpp-python[server]) |
| vllm           | a merged export (GPU only) | ``vllm serve DIR --host 127.0.0.1 --port P --served-model-name engine --max-model-len N`` |
| transformers   | anything (default)         | in process, batched (:mod:`tunerail.serve.batching`) |

The rendered prompt goes to the engine's ``/v1/completions`` (a completion, not a chat: the
template was applied already), streamed; each text chunk reaches the request as the engine sends
it. llama.cpp tokenises that text with special tokens parsed and adds a BOS where the GGUF asks for one;
a template that already opened with the BOS then loses it (``gguf.engine_prompt``), so the engine reads
training's tokens; vLLM is asked for ``add_special_tokens: false`` for the same reason.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError
from tunerail.export.gguf import engine_prompt
from tunerail.serve.batching import _END, GenRequest

ENGINES = ("transformers", "llama.cpp", "vllm")
ENGINE_MODEL = "engine"  # the model name the engine is told to serve (clients still send the run's id to tunerail)
_INSTALL = {
    "llama.cpp": (
        "llama_cpp",
        'pip install "llama-cpp-python[server]" (it compiles llama.cpp; CMAKE_ARGS="-DGGML_NATIVE=OFF" for a portable build)',
    ),
    "vllm": ("vllm", "pip install vllm on a machine with a CUDA GPU (vLLM does not run on a CPU-only install)"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_command(engine: str, model: Path, port: int, context: int) -> list[str]:
    """The command line that starts ``engine``'s OpenAI server on ``model`` (a .gguf file or a merged folder)."""
    if engine == "llama.cpp":
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port)] + [
            "--n_ctx",
            str(context),
            "--model_alias",
            ENGINE_MODEL,
        ]
    return ["vllm", "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--served-model-name", ENGINE_MODEL] + [
        "--max-model-len",
        str(context),
    ]


def check_engine(engine: str) -> None:
    """A clear error (exit 2) before anything starts when the engine is unknown or not installed."""
    if engine not in ENGINES:
        raise TunerailError(Problem(f"unknown engine {engine!r}", field="--engine", fix=f"use one of: {', '.join(ENGINES)}"))
    if engine in _INSTALL:
        module, how = _INSTALL[engine]
        if importlib.util.find_spec(module) is None or (engine == "llama.cpp" and importlib.util.find_spec("sse_starlette") is None):
            raise TunerailError(Problem(f"the {engine} engine is not installed", field="--engine", fix=how))


@dataclass
class EngineProcess:
    """A started engine: its child process, base URL and log file."""

    engine: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_engine(engine: str, model: Path, *, context: int, log_dir: Path, timeout_s: float = 300.0) -> EngineProcess:
    """Start the engine and wait until ``/v1/models`` answers; raises ``TunerailError`` with its log's tail if it dies."""
    import httpx

    check_engine(engine)
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"engine-{engine}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(engine_command(engine, model, port, context), stdout=log, stderr=subprocess.STDOUT)
    started = EngineProcess(engine, proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{started.url}/v1/models", timeout=2).status_code == 200:
                return started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    started.stop()
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
    raise TunerailError(Problem(f"the {engine} engine did not start on {model}: {tail}", file=str(log_path), fix="read the engine's log"))


class EngineBatcher:
    """The engine in the place of :class:`tunerail.serve.batching.Batcher`: each request streamed from ``/v1/completions``.

    The engine batches by itself (llama.cpp's server one request at a time per slot, vLLM continuously).
    """

    def __init__(self, engine: EngineProcess, *, bos: tuple[bool, str] = (False, "")):
        self.engine = engine
        self.bos = bos  # llama.cpp: (the GGUF adds a BOS, its text), for gguf.engine_prompt
        self.batch_sizes: dict[int, int] = {}

    def submit(self, request: GenRequest) -> GenRequest:
        threading.Thread(target=self._run, args=(request,), daemon=True).start()
        return request

    def close(self) -> None:
        """Nothing to drain here: the engine process is stopped by its owner."""

    def body(self, request: GenRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": ENGINE_MODEL,
            "prompt": engine_prompt(request.prompt_text, self.bos[1], self.bos[0]),
            "max_tokens": request.max_new,
            "temperature": request.temperature or 0.0,  # tunerail's default is greedy, as eval decoded
            "top_p": request.top_p or 1.0,
            "stream": True,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if self.engine.engine == "vllm":
            body["add_special_tokens"] = False
        return body

    def _run(self, request: GenRequest) -> None:
        import httpx

        put = request._out.put
        try:
            with httpx.stream("POST", f"{self.engine.url}/v1/completions", json=self.body(request), timeout=600) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines():
                    if request.cancel.is_set():
                        break  # the client went away: closing the stream stops the engine's generation
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    choice = (json.loads(line[6:]).get("choices") or [{}])[0]
                    if choice.get("text"):
                        request.completion_tokens += 1
                        put(choice["text"])
                    if choice.get("finish_reason"):
                        done = choice["finish_reason"]
                        # the transformers path counts the end-of-sequence token; "length" means max_tokens were used
                        request.completion_tokens = (
                            request.max_new if done == "length" else min(request.completion_tokens + 1, request.max_new)
                        )
        except Exception as exc:  # the engine's failure reaches the request (a 500 for the client, the log keeps it)
            put(exc)
        finally:
            put(_END)


def start_for_run(run: Any, engine: str) -> tuple[Any, EngineBatcher]:
    """Start ``engine`` on the export ``run`` names; returns a tokenizer-only ``LoadedModel`` (prompt rendering,
    context check, traffic fingerprint) and the batcher that sends requests to the engine.

    ``run`` is a :class:`tunerail.serve.run.RunInfo` resolved from an export folder (``export_kind`` set).
    """
    from transformers import AutoConfig

    from tunerail.eval.generate import LoadedModel
    from tunerail.export.gguf import gguf_bos
    from tunerail.io import hash_file
    from tunerail.models import load_tokenizer, resolve_model

    check_engine(engine)
    wanted = {"llama.cpp": "gguf", "vllm": "merged"}[engine]
    if run.export_kind != wanted:
        given = f"a {run.export_kind} export" if run.export_kind else "a run folder (base + adapter)"
        raise TunerailError(
            Problem(
                f"the {engine} engine serves a {wanted} export; {run.base_model if run.export_kind else run.run_dir} is {given}",
                field="--engine",
                fix=f"tunerail export RUN --format {wanted}, then tunerail serve RUN/export/{wanted} --engine {engine}",
            )
        )
    folder = Path(run.base_model)
    model = next(iter(sorted(folder.glob("*.gguf"))), folder) if wanted == "gguf" else folder
    trained = run.train_json.get("base_model") or run.config.model.base  # the tokenizer the export was verified against
    context = int(getattr(AutoConfig.from_pretrained(resolve_model(trained)), "max_position_embeddings", 2048))
    fingerprint = f"{engine}-{hash_file(model)[:16]}" if model.is_file() else f"{engine}-{folder.name}"
    lm = LoadedModel(_ContextOnly(context), load_tokenizer(trained), f"{engine}:{model.name}", fingerprint)
    bos = gguf_bos(model) if engine == "llama.cpp" else (False, "")
    return lm, EngineBatcher(start_engine(engine, model, context=context, log_dir=run.traffic_path.parent), bos=bos)


@dataclass
class _ContextOnly:
    """Stands for the model object where only ``config.max_position_embeddings`` is read (the engine holds the weights)."""

    max_position_embeddings: int

    @property
    def config(self) -> "_ContextOnly":
        return self
