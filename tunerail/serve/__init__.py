"""`tunerail serve`: the tuned model (base + adapter, merged) behind an OpenAI-compatible API.

Every request is appended to ``RUN_DIR/traffic/traffic.jsonl`` (masked, crash-safe, rotated),
which ``tunerail monitor`` compares with the training data. The entry function ``serve()`` and
``build_state()`` are in ``recipe.py``; the request handling in ``app.py``.
"""

from tunerail._callable import make_callable
from tunerail.serve.recipe import build_state, serve
from tunerail.serve.run import RunInfo, load_run
from tunerail.serve.traffic import TrafficLog, read_traffic

__all__ = ["RunInfo", "TrafficLog", "build_state", "load_run", "read_traffic", "serve"]

make_callable(__name__, serve)
