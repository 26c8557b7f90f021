"""Real rows read three ways give the same records: a JSON file, a Hub-layout repo folder, a cached Hub id.

Alpaca-cleaned (5,000 rows, /work/shared/data/instruct) is written as a dataset repository folder, then
put in a throwaway `datasets` cache as commit ``ccc...`` of ``demo/alpaca_5000`` (the layout a download
leaves), and read offline through ``data.path: demo/alpaca_5000``. Prints rows, quarantined rows, format,
wall time and the resolved commit; no network.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python bench/hub_load.py [path/to/alpaca_5000.json]

"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("TUNERAIL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
if not SHARED.exists() and Path("/work/shared/data").exists():  # worktrees sit one level deeper
    SHARED = Path("/work/shared/data")
SOURCE = SHARED / "instruct" / "alpaca_5000.json"


def _timed(source):
    from tunerail.data.loaders import load_records

    started = time.perf_counter()
    records, rejected, fmt = load_records(source)
    return records, rejected, fmt, time.perf_counter() - started


def main(src: Path) -> None:
    import datasets.config
    from datasets import load_dataset_builder

    from tunerail.data.hub import HubSource, pin

    tmp = Path(tempfile.mkdtemp())
    try:
        repo = tmp / "alpaca_5000"
        (repo / "data").mkdir(parents=True)
        rows = json.loads(src.read_text(encoding="utf-8"))
        (repo / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        datasets.config.HF_DATASETS_CACHE = str(tmp / "cache")
        builder = load_dataset_builder(str(repo), cache_dir=str(tmp / "build"))
        builder.dataset_name = "alpaca_5000"
        builder.download_and_prepare(output_dir=str(tmp / "cache" / "demo___alpaca_5000" / "default" / "0.0.0" / ("c" * 40)))
        results = {
            "json file": _timed(src),
            "repo folder": _timed(HubSource(str(repo))),
            "cached Hub id": _timed(HubSource("demo/alpaca_5000")),
        }
        for name, (records, rejected, fmt, seconds) in results.items():
            print(f"{name:<14} {len(records):>5} records  {len(rejected)} quarantined  {fmt:<12} {seconds:.2f} s")
        base = results["json file"][0]
        same = all([(r.prompt, r.completion) for r in res[0]] == [(r.prompt, r.completion) for r in base] for res in results.values())
        print(f"same records all three ways: {same}; resolved commit {pin(HubSource('demo/alpaca_5000')).commit}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
