import multiprocessing as mp
from pathlib import Path

from tunerail.store import Store


def test_identical_content_is_stored_once(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    first = store.add("checkpoint", {"a.bin": tmp_path / "a.bin"}, transform="train")
    second = store.add("checkpoint", {"a.bin": tmp_path / "a.bin"}, transform="train")
    assert first.id == second.id
    assert len(list((tmp_path / "store" / "objects").rglob("*"))) == 2  # one folder, one blob


def test_verify_names_a_flipped_byte(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "adapter.safetensors").write_bytes(bytes(range(256)) * 100)
    art = store.add("checkpoint", {"adapter.safetensors": tmp_path / "adapter.safetensors"})
    assert store.verify(art.id) == []
    blob = store.object_path(art.files["adapter.safetensors"]["sha256"])
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[1234] ^= 0x01
    blob.write_bytes(bytes(data))
    problems = store.verify(art.short_id)
    assert len(problems) == 1 and "adapter.safetensors" in problems[0].message and "corrupted" in problems[0].message


def test_lineage_walks_parents(tmp_path):
    store = Store(tmp_path / "s")
    src = store.add("dataset", {"rows.jsonl": b"{}\n"}, transform="import")
    split = store.add("split", {"train.jsonl": b"{}\n", "test.jsonl": b""}, parents=[src.id], transform="split")
    ckpt = store.add("checkpoint", {"adapter.bin": b"w"}, parents=[split.id], transform="train")
    assert [a.kind for a in store.lineage(ckpt.id)] == ["dataset", "split", "checkpoint"]


def _writer(root: str, worker: int) -> None:
    store = Store(root)
    for i in range(20):
        store.add("dataset", {"rows.jsonl": f"{worker}-{i}\n".encode(), "shared.txt": b"same"})


def test_two_processes_writing_at_once_never_corrupt(tmp_path):
    root = str(tmp_path / "store")
    procs = [mp.get_context("spawn").Process(target=_writer, args=(root, w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(root)
    assert len(store.list()) == 40
    assert store.verify() == []
    assert not list(Path(root).rglob("*.tmp")) and not list(Path(root).rglob(".incoming.*"))


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from tunerail.store import write_atomic

    path = write_atomic(tmp_path / "report.html", "<p>x</p>")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & stat.S_IRGRP, oct(mode)  # not the 0600 that mkstemp creates
