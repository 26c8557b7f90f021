"""MiniLM embeddings: bf16 autocast stays close to fp32; the content-hash cache survives two writers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tunerail.data.embeddings import VectorCache, embed_texts, encode

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "banking77" / "train.csv"


def test_bf16_autocast_is_numerically_close_to_fp32():
    texts = [r["text"] for r in csv.DictReader(open(EXAMPLE, newline=""))][::150]  # 10 real queries
    fp32 = encode(texts, precision="fp32", backend="torch")
    bf16 = encode(texts, precision="bf16", backend="torch")
    assert fp32.shape == bf16.shape == (10, 384) and bf16.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (fp32 * bf16).sum(axis=1).min() >= 0.999


def test_onnx_runtime_matches_the_pytorch_encoder():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    texts = [r["text"] for r in csv.DictReader(open(EXAMPLE, newline=""))][::100] + ["", "a " * 400]
    torch_vecs = encode(texts, backend="torch")
    onnx_vecs = encode(texts, backend="onnx")
    assert onnx_vecs.shape == torch_vecs.shape and onnx_vecs.dtype == np.float32
    assert (torch_vecs * onnx_vecs).sum(axis=1).min() >= 0.999


def test_cache_hits_and_keeps_rows_aligned(tmp_path):
    from tunerail.data.embeddings import CACHE_STATS

    texts = ["how do I top up my card", "where is my refund", "how do I top up my card"]
    before = dict(CACHE_STATS)
    first = embed_texts(texts, cache_dir=tmp_path)
    assert CACHE_STATS["encoded"] - before["encoded"] == 2 and CACHE_STATS["hits"] == before["hits"]  # distinct texts once
    assert np.array_equal(first[0], first[2])
    again = embed_texts(texts[::-1], cache_dir=tmp_path)
    assert CACHE_STATS["encoded"] - before["encoded"] == 2 and CACHE_STATS["hits"] - before["hits"] == 3  # all from disk
    assert np.array_equal(again, first[::-1])


def test_cache_save_merges_what_another_writer_saved(tmp_path):
    path = tmp_path / "c.npz"
    a, b = VectorCache(path), VectorCache(path)  # two processes opened the same file
    a.update([(b"a" * 16, np.ones(384, np.float32))])
    a.save()
    b.update([(b"b" * 16, np.zeros(384, np.float32))])
    b.save()
    merged = VectorCache(path)
    assert b"a" * 16 in merged and b"b" * 16 in merged
