"""`tunerail serve RUN_DIR`: the tuned model behind an OpenAI-compatible API, every request logged."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from tunerail.cli._common import app, console, guarded
from tunerail.config import field_help


@app.command("serve")
@guarded
def serve_cmd(
    run_dir: Path = typer.Argument(
        ..., help="Run folder written by `tunerail run` or `tunerail train --out`, or an export (RUN/export/merged, RUN/export/gguf)."
    ),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml of the run (default: found in or above RUN_DIR)."),
    host: Optional[str] = typer.Option(None, "--host", help=field_help("serve.host")),
    port: Optional[int] = typer.Option(None, "--port", help=field_help("serve.port")),
    api_key_env: Optional[str] = typer.Option(
        None, "--api-key-env", help="Environment variable holding the API key; requests must send it as a Bearer token."
    ),
    allow_changed_adapter: bool = typer.Option(
        False,
        "--allow-changed-adapter",
        help="Serve an adapter whose files differ from the checkpoint the run stored (recorded in RUN_DIR/overrides.jsonl).",
    ),
    engine: str = typer.Option(
        "transformers",
        "--engine",
        help="transformers (in process), llama.cpp (a GGUF export, llama-cpp-python[server]) or vllm (a merged export, GPU); "
        "tunerail fronts the engine's server and keeps the key, masking and traffic log.",
    ),
) -> None:
    """Serve base + adapter (merged) at /v1/chat/completions, /v1/models, /health; log traffic to RUN_DIR/traffic/."""
    from tunerail.serve import load_run, serve
    from tunerail.serve.engine import check_engine
    from tunerail.serve.run import record_override

    check_engine(engine)
    run = load_run(run_dir, config, allow_changed_adapter=allow_changed_adapter)
    if run.adapter_check.get("problems"):
        path = record_override(run, "serve", "--allow-changed-adapter")
        console.print(
            f"[yellow]warning:[/] serving a CHANGED adapter ({len(run.adapter_check['problems'])} file(s)); recorded in {escape(str(path))}"
        )
    cfg = run.config
    bind = host or cfg.serve.host
    what = f"{run.export_kind} export" if run.export_kind else ("+ adapter" if run.adapter_dir else "no adapter")
    console.print(
        f"serving [bold]{escape(run.model_id)}[/] ({escape(run.base_model)}, {what}, engine {escape(engine)}) "
        f"on http://{escape(bind)}:{port or cfg.serve.port}/v1 "
        f"- traffic log: {escape(str(run.traffic_path))}",
        highlight=False,
    )
    if bind not in ("127.0.0.1", "localhost", "::1") and not (api_key_env or cfg.serve.api_key_env):
        console.print("[yellow]warning:[/] listening beyond loopback without an API key (--api-key-env)")
    serve(run, config=run.config, host=host, port=port, api_key_env=api_key_env, engine=engine)
