"""Tiny randomly initialised Llama + LoRA adapter for fast end-to-end eval tests.

Built from the SmolLM2 tokenizer (real chat template, real tokens) with hidden size 32 and 2
layers, so a whole evaluate() run takes seconds. Cached per test session.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def cached_tiny_pair() -> tuple[Path, Path]:
    """The tiny model and adapter, built once into ~/.cache/tunerail/tests (atomic rename)."""
    import os
    import shutil
    import tempfile

    from tunerail.models import cache_root

    root = cache_root() / "tests" / "tiny-llama-v1"
    if not (root / "adapter" / "adapter_config.json").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="tiny.", dir=root.parent))
        model = build_tiny_model(tmp / "model")
        build_tiny_adapter(model, tmp / "adapter")
        try:
            os.replace(tmp, root)
        except OSError:  # another worker won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return root / "model", root / "adapter"


def build_tiny_model(folder: Path, hidden_size: int = 32, model_type: str = "llama", **config) -> Path:
    """A randomly initialised 2-layer Llama (or another ``model_type``: mistral, qwen2, qwen3, with ``config``
    overrides) with the SmolLM2 tokenizer, saved to ``folder``.

    Shared by the eval and train tests (``train_tiny.tiny_model_dir`` uses hidden size 64) and the GGUF tests.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunerail.models import load_tokenizer

    if (folder / "config.json").exists():
        return folder
    tok = load_tokenizer("bundled:smollm2")
    torch.manual_seed(0)
    settings = dict(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **{**settings, **config}))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_adapter(model_dir: Path, folder: Path, seed: int = 1) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (folder / "adapter_config.json").exists():
        return folder
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


class JudgeServer:
    """Serves /v1/chat/completions; ``policy(user_text, call_no)`` returns the reply text or an int HTTP status."""

    def __init__(self, policy):
        self.policy = policy
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                reply = outer.policy(body["messages"][-1]["content"], len(outer.requests))
                if isinstance(reply, int):
                    self.send_response(reply)
                    self.end_headers()
                    return
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def judge_answers(user_text: str) -> tuple[str, str]:
    """Answer A and B as they appear in a judge prompt."""
    a = user_text.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
    b = user_text.split("Answer B:\n", 1)[1].split("\n\nReply with", 1)[0]
    return a, b
