import json
import multiprocessing as mp
from pathlib import Path

from tunerail.cli import main
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


def _writer(root: str, worker: int, big: str) -> None:
    store = Store(root)
    for i in range(20):
        # different content per process, plus content both processes write at the same moment
        store.add("dataset", {"rows.jsonl": f"{worker}-{i}\n".encode(), "shared.txt": b"same"})
        store.add("dataset", {"rows.jsonl": f"same-{i}\n".encode()})
    store.add("checkpoint", {"model.safetensors": big}, transform="train")


def test_two_processes_writing_at_once_never_corrupt(tmp_path):
    root = str(tmp_path / "store")
    big = tmp_path / "model.safetensors"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB, written by both processes at once
    procs = [mp.get_context("spawn").Process(target=_writer, args=(root, w, str(big))) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = Store(root)
    assert len(store.list("dataset")) == 40 + 20 and len(store.list("checkpoint")) == 1
    assert store.verify() == []
    assert not list(Path(root).rglob("*.tmp")) and not list(Path(root).rglob(".incoming.*"))
    blobs = [p for p in (Path(root) / "objects").rglob("*") if p.is_file()]
    assert len(blobs) == 40 + 1 + 20 + 1  # every distinct content exactly once


def test_add_dataset_is_addressed_by_canonical_content(tmp_path):
    store = Store(tmp_path / "s")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"text": "hi", "label": "x"}\n')
    b.write_text('{"label":"x","text":"hi"}\n')
    rows_a = [{"text": "hi", "label": "x", "_tunerail": {"index": 0, "line": 1, "file": str(a)}}]
    rows_b = [{"label": "x", "text": "hi", "_tunerail": {"index": 0, "line": 9, "file": str(b)}}]
    first = store.add_dataset(rows_a, sources=[a])
    second = store.add_dataset(rows_b, sources=[b])
    assert first.files == second.files  # key order and provenance are not content: one blob
    assert first.id != second.id  # but the id covers the whole manifest, and the sources differ
    assert first.meta["rows"] == 1 and first.meta["sources"][str(a)]["size"] == a.stat().st_size
    assert store.open(first.id, "rows.jsonl").read_text() == '{"label":"x","text":"hi"}\n'
    third = store.add_dataset([{"text": "hi", "label": "y"}], parents=[first.id], transform="doctor --fix")
    assert third.id != first.id and [x.id for x in store.lineage(third.id)] == [first.id, third.id]
    assert [c.id for c in store.children(first.id)] == [third.id]


def test_edited_manifest_is_reported(tmp_path):
    store = Store(tmp_path / "s")
    art = store.add("checkpoint", {"w.bin": b"weights"})
    path = store.manifests / f"{art.id}.json"
    data = json.loads(path.read_text())
    data["files"]["w.bin"]["sha256"] = store.add("x", {"y": b"other"}).files["y"]["sha256"]
    path.write_text(json.dumps(data))
    problems = store.verify(art.id)
    assert len(problems) == 1 and "manifest" in problems[0].message and "edited" in problems[0].message


def _checkpoint_store(tmp_path):
    store = Store(tmp_path / "store")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 400)
    (folder / "adapter_config.json").write_text('{"r": 16}')
    dataset = store.add_dataset([{"text": "a", "label": "b"}], sources=[folder / "adapter_config.json"])
    split = store.add(
        "split", {"test.jsonl": b"{}\n"}, parents=[dataset.id], transform="split", meta={"sizes": {"train": 1, "validation": 0, "test": 1}}
    )
    ckpt = store.add_folder("checkpoint", folder, parents=[split.id], transform="train")
    return store, ckpt


def _flip(path: Path, offset: int = 1234) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_cli_verify_names_the_flipped_file_in_store_and_export(tmp_path, capsys):
    store, ckpt = _checkpoint_store(tmp_path)
    root = str(store.root)
    assert main(["verify", "--store", root]) == 0
    exported = store.export(ckpt.id, tmp_path / "exported")
    assert main(["verify", str(exported)]) == 0
    _flip(exported / "adapter_model.safetensors")
    capsys.readouterr()
    assert main(["verify", str(exported)]) == 1
    assert "corrupted file 'adapter_model.safetensors'" in capsys.readouterr().err
    _flip(store.object_path(ckpt.files["adapter_model.safetensors"]["sha256"]))
    assert main(["verify", ckpt.short_id, "--store", root]) == 1
    assert main(["verify", root]) == 1
    err = capsys.readouterr().err
    assert "corrupted file 'adapter_model.safetensors' of checkpoint " + ckpt.short_id in err
    store.object_path(ckpt.files["adapter_config.json"]["sha256"]).unlink()
    assert main(["verify", root]) == 1 and "missing file 'adapter_config.json'" in capsys.readouterr().err
    assert main(["verify", "nosuchid", "--store", root]) == 2


def test_cli_lineage_and_log(tmp_path, capsys):
    store, ckpt = _checkpoint_store(tmp_path)
    assert main(["lineage", ckpt.short_id, "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    order = [out.index(word) for word in ("source", "dataset", "split", "checkpoint")]
    assert order == sorted(order) and "adapter_config.json" in out and "train 1 / validation 0 / test 1" in out
    assert main(["log", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("dataset", "split", "checkpoint", ckpt.short_id))


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from tunerail.io import write_atomic

    path = write_atomic(tmp_path / "report.html", "<p>x</p>")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & stat.S_IRGRP, oct(mode)  # not the 0600 that mkstemp creates


def test_many_files_are_staged_then_committed_once(tmp_path):
    folder = tmp_path / "shards"
    for k in range(100):  # above BATCH_SYNC: the one-sync path
        (folder / f"{k % 7}").mkdir(parents=True, exist_ok=True)
        (folder / f"{k % 7}" / f"part-{k}.bin").write_bytes(f"shard {k}".encode() * (k + 1))
    (folder / "0" / "dup.bin").write_bytes(b"shard 0")  # same bytes as part-0: one blob
    store = Store(tmp_path / "store")
    art = store.add_folder("checkpoint", folder)
    assert len(art.files) == 101 and store.verify(art.id) == []
    assert len([p for p in (tmp_path / "store" / "objects").rglob("*") if p.is_file()]) == 100
    assert not list((tmp_path / "store").rglob(".incoming.*"))
    _flip(store.object_path(art.files["3/part-52.bin"]["sha256"]), offset=5)
    assert [p.message.split(" of ")[0] for p in store.verify(art.id)] == ["corrupted file '3/part-52.bin'"]


def test_edited_meta_parents_or_transform_fail_verify(tmp_path, capsys):
    store = Store(tmp_path / "s")
    parent = store.add("dataset", {"rows.jsonl": b"{}\n"})
    art = store.add("split", {"test.jsonl": b"{}\n"}, parents=[parent.id], transform="split", meta={"sizes": {"test": 1}})
    path = store.manifests / f"{art.id}.json"
    original = path.read_text()
    for edit in ({"meta": {"sizes": {"test": 999}}}, {"parents": []}, {"transform": "import"}):
        path.write_text(json.dumps({**json.loads(original), **edit}))
        problems = store.verify(art.id)
        assert len(problems) == 1 and "edited" in problems[0].message, edit
    path.write_text(original)
    assert store.verify() == []
    assert main(["verify", "--store", str(tmp_path / "no-such-store")]) == 2
    assert "no store" in " ".join(capsys.readouterr().err.split())


def test_manifest_with_invalid_json_is_named_by_verify_and_log(tmp_path, capsys):
    store = Store(tmp_path / "s")
    art = store.add("checkpoint", {"w.bin": b"weights"})
    store.add("checkpoint", {"v.bin": b"other weights"})
    broken = store.manifests / f"{art.id}.json"
    broken.write_text(broken.read_text()[:40])
    capsys.readouterr()
    assert main(["verify", "--store", str(tmp_path / "s")]) == 1  # a finding: the store is damaged
    err = " ".join(capsys.readouterr().err.split())
    assert "unreadable store manifest" in err and art.id[:12] in err and "Traceback" not in err
    assert main(["log", "--store", str(tmp_path / "s")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unreadable store manifest" in err and art.id[:12] in err and "Traceback" not in err
