"""``serve()``: the tuned model (base + adapter, merged) behind an OpenAI-compatible API.

Every request is appended to ``RUN_DIR/traffic/traffic.jsonl`` (masked, crash-safe, rotated),
which ``tunerail monitor`` compares with the training data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tunerail.serve.run import RunInfo, load_run
from tunerail.serve.traffic import TrafficLog

__all__ = ["build_state", "serve"]


def build_state(
    run_dir: str | Path | RunInfo,
    *,
    config: Any = None,
    api_key_env: str | None = None,
    traffic_path: str | Path | None = None,
    lm: Any = None,
    engine: str = "transformers",
) -> Any:
    """Load the model and open the traffic log; raises ``TunerailError`` before anything listens.

    Parameters
    ----------
    run_dir : run folder (``tunerail run`` / ``tunerail train --out``) or a resolved ``RunInfo``.
    config : config object or YAML path (default: ``tunerail.yaml`` found near the run).
    api_key_env : environment variable holding the key (default ``serve.api_key_env``); when set,
        the variable must exist and every request must send ``Authorization: Bearer <key>``.
    traffic_path : log file (default ``RUN_DIR/traffic/traffic.jsonl``).
    lm : an already loaded ``LoadedModel`` (benchmarks reuse one).
    engine : ``transformers`` (in process, default), ``llama.cpp`` (a GGUF export) or ``vllm`` (a merged
        export, GPU): the engine's server is started behind tunerail (:mod:`tunerail.serve.engine`);
        stop it with ``state.engine.engine.stop()``.
    """
    from tunerail.errors import Problem, TunerailError
    from tunerail.eval.generate import load_model
    from tunerail.prompting import pick_template
    from tunerail.serve.app import ServeState, context_length

    run = run_dir if isinstance(run_dir, RunInfo) else load_run(run_dir, config)
    cfg = run.config
    env = api_key_env or cfg.serve.api_key_env
    key = None
    if env:
        key = os.environ.get(env)
        if not key:
            raise TunerailError(
                Problem(
                    f"the API key variable {env} is not set or empty",
                    field="serve.api_key_env",
                    fix=f"export {env}=<a long random key>, or drop --api-key-env to serve without a key",
                )
            )
    batcher = None
    if engine != "transformers":
        from tunerail.serve.engine import start_for_run

        lm, batcher = start_for_run(run, engine)
    elif lm is None:
        lm = _load(run, load_model)
    try:
        log = TrafficLog(
            traffic_path or run.traffic_path,
            max_bytes=int(cfg.serve.log_max_mb * 1_000_000),
            backups=cfg.serve.log_backups,
            mask_pii=cfg.serve.mask_pii,
            phone_region=cfg.doctor.phone_region,
            fsync=cfg.serve.log_fsync,
        )
        return ServeState(
            lm=lm,
            model_id=run.model_id,
            template=pick_template(cfg),
            labels=run.labels(),
            task=cfg.task,
            traffic=log,
            max_new_tokens=cfg.serve.max_new_tokens,
            context_length=context_length(lm),
            api_key=key,
            max_batch_size=cfg.serve.max_batch_size,
            batch_window_ms=cfg.serve.batch_window_ms,
            engine=batcher,
            num_beams=cfg.eval.num_beams,
            keyword_cover=cfg.task == "generation" and cfg.eval.decoding != "free",
        )
    except BaseException:  # an engine already started must not outlive a failed start
        if batcher is not None:
            batcher.engine.stop()
        raise


def _load(run: RunInfo, load_model: Any) -> Any:
    """The model the run (or export) names: base + adapter merged, an exported merged folder, or a GGUF export dequantised."""
    if run.export_kind == "gguf":
        from tunerail.export.gguf import gguf_file, load_gguf
        from tunerail.io import hash_file

        path = gguf_file(Path(run.base_model))
        return load_gguf(path, f"gguf-{hash_file(path)[:16]}", name=f"export:{path.name}")
    return load_model(run.base_model, run.adapter_dir)


def serve(
    run_dir: str | Path | RunInfo,
    *,
    config: Any = None,
    host: str | None = None,
    port: int | None = None,
    api_key_env: str | None = None,
    engine: str = "transformers",
) -> None:
    """Serve until interrupted (uvicorn, one process). Host and port default to ``serve.host/port``."""
    import uvicorn

    from tunerail.serve.app import create_app

    run = run_dir if isinstance(run_dir, RunInfo) else load_run(run_dir, config)
    state = build_state(run, api_key_env=api_key_env, engine=engine)
    cfg = run.config
    try:
        uvicorn.run(
            create_app(state),
            host=host or cfg.serve.host,
            port=cfg.serve.port if port is None else port,
            log_level="warning",
            access_log=False,
        )
    finally:
        state.traffic.close()
        if state.engine is not None:
            state.engine.engine.stop()
