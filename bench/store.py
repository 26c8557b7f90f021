"""Store throughput: add and verify 1 GB of checkpoint-like files and 10,000 small files,
against plain ``sha256sum`` (and ``cp`` + ``sha256sum`` for add, which must also write a copy)
on the same files in the same run. Data lives in /tmp and is deleted afterwards.

Every timing is the median of ``REPEATS`` runs with the files already in the page cache (the
first read of each kind warms it), so the comparison is hashing + copying, not disk luck.
``add`` makes every blob durable before naming it (fsync per file, or one ``os.sync`` for more
than 64 files), which ``cp`` does not; both numbers are shown. Each timed run starts after an
``os.sync`` so that no run pays for an earlier run's dirty pages.

    python bench/store.py      # prints a table, writes bench/results/store.json
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
REPEATS = int(os.environ.get("REPEATS", 3))
BIG_FILES, BIG_SIZE = 4, 256 * 1024 * 1024  # 1 GiB: 4 safetensors-sized shards
SMALL_FILES = 10_000


def make_data(root: Path) -> tuple[Path, Path]:
    import numpy as np

    big, small = root / "checkpoint", root / "small"
    big.mkdir()
    small.mkdir()
    rng = np.random.default_rng(0)
    for k in range(BIG_FILES):  # float16 weights: incompressible, like real checkpoints
        rng.standard_normal(BIG_SIZE // 2, dtype=np.float32).astype(np.float16).tofile(
            big / f"model-{k + 1:05d}-of-{BIG_FILES:05d}.safetensors"
        )
    for k in range(SMALL_FILES):
        (small / f"{k // 1000:02d}").mkdir(exist_ok=True)
        (small / f"{k // 1000:02d}" / f"row-{k:05d}.json").write_bytes(rng.bytes(int(rng.integers(200, 8000))))
    return big, small


def files_of(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.rglob("*")) if p.is_file()]


def timed(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        os.sync()  # flush earlier writes outside the timing, so no run pays for another's dirty pages
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sha256sum(files: list[str]) -> None:
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)


def cp_and_sha256sum(folder: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["cp", "-r", str(folder), str(dest)], check=True)
    sha256sum(files_of(folder))


def main() -> None:
    from tunerail.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="tunerail-bench-store-", dir="/tmp"))
    results = {}
    try:
        big, small = make_data(tmp)
        for name, folder in (("1 GiB checkpoint (4 files)", big), (f"{SMALL_FILES:,} small files", small)):
            files = files_of(folder)
            size = sum(os.path.getsize(f) for f in files)
            sha256sum(files)  # warm the page cache
            t_sum = timed(lambda: sha256sum(files))
            t_cp = timed(lambda: cp_and_sha256sum(folder, tmp / "copy"))
            shutil.rmtree(tmp / "copy", ignore_errors=True)

            def add() -> None:
                shutil.rmtree(tmp / "store", ignore_errors=True)
                Store(tmp / "store").add_folder("checkpoint", folder)

            t_add = timed(add)
            store = Store(tmp / "store")
            artifact = store.list()[0]
            t_verify = timed(lambda: store.verify(artifact.id))
            assert store.verify(artifact.id) == []
            shutil.rmtree(tmp / "store", ignore_errors=True)
            results[name] = {
                "files": len(files),
                "bytes": size,
                "sha256sum_s": round(t_sum, 3),
                "cp_sha256sum_s": round(t_cp, 3),
                "add_s": round(t_add, 3),
                "verify_s": round(t_verify, 3),
                "verify_vs_sha256sum": round(t_verify / t_sum, 2),
                "add_vs_sha256sum": round(t_add / t_sum, 2),
                "add_vs_cp_sha256sum": round(t_add / t_cp, 2),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"cpus: {os.cpu_count()}, repeats: {REPEATS} (median), page cache warm\n")
    header = (
        f"{'data':<28} {'sha256sum':>10} {'cp+sha256sum':>13} {'add':>8} {'verify':>8} "
        f"{'verify/sha':>11} {'add/sha':>8} {'add/(cp+sha)':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<28} {r['sha256sum_s']:>9.2f}s {r['cp_sha256sum_s']:>12.2f}s {r['add_s']:>7.2f}s {r['verify_s']:>7.2f}s "
            f"{r['verify_vs_sha256sum']:>10.2f}x {r['add_vs_sha256sum']:>7.2f}x {r['add_vs_cp_sha256sum']:>12.2f}x"
        )
    out = REPO / "bench" / "results" / "store.json"
    out.write_text(json.dumps({"cpus": os.cpu_count(), "repeats": REPEATS, "results": results}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
