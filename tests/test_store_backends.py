"""Stores and the fast encoder paths: one identity for every backend, and pooling recorded per store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, maxsim
from edgecolbert.errors import StoreError
from edgecolbert.store import EdgeStore
from edgecolbert.store.edge import SCHEMA_FILE
from edgecolbert.store.schema import model_identity
from store_fixtures import corpus, open_store

pytestmark = requires_minilm
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (the 'onnx' extra)")

QUERIES = ["a short text about rivers", "violins and comets", "note 7"]
MAX_RELATIVE_SCORE_DIFF = 1e-4


@pytest.fixture(scope="module")
def checkpoint(model: ColBERT) -> Path:
    return Path(model.name)


@pytest.fixture(scope="module")
def onnx_model(checkpoint: Path, shared_onnx_cache: Path) -> ColBERT:
    return ColBERT.from_pretrained(checkpoint, backend="onnx", onnx_cache_dir=shared_onnx_cache)


@pytest.fixture(scope="module")
def int8_model(checkpoint: Path, shared_onnx_cache: Path) -> ColBERT:
    return ColBERT.from_pretrained(checkpoint, backend="onnx", quantize="int8", onnx_cache_dir=shared_onnx_cache)


def _search_all(store: Any) -> list[list[tuple[str, float]]]:
    return [[(hit.id, hit.score) for hit in store.search(query, top_k=10, prefetch_k=60)] for query in QUERIES]


def _assert_same_hits(got: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]]) -> None:
    for got_hits, expected_hits in zip(got, expected):
        assert [doc_id for doc_id, _ in got_hits] == [doc_id for doc_id, _ in expected_hits]
        got_scores = np.array([score for _, score in got_hits])
        expected_scores = np.array([score for _, score in expected_hits])
        np.testing.assert_allclose(got_scores, expected_scores, rtol=MAX_RELATIVE_SCORE_DIFF)


def test_every_backend_of_a_checkpoint_has_its_identity(
    model: ColBERT, onnx_model: ColBERT, int8_model: ColBERT, other_model: ColBERT
) -> None:
    assert onnx_model.backend == "onnx" and int8_model.quantize == "int8"
    assert model_identity(onnx_model) == model_identity(model) == model_identity(int8_model)
    assert model_identity(model.with_pool_factor(2)) == model_identity(model)
    assert model_identity(other_model) != model_identity(model)


@pytest.mark.parametrize("engine", ["edge", "qdrant"])
def test_indexed_with_torch_searched_with_onnx(
    engine: str, tmp_path: Path, model: ColBERT, onnx_model: ColBERT
) -> None:
    texts, ids, metadatas = corpus()
    with open_store(engine, tmp_path, model, datatype="float32") as store:
        store.add(texts, ids, metadatas)
        expected = _search_all(store)
        if engine == "qdrant":
            # The in-memory server lives as long as its client: search through a second store on it.
            from edgecolbert.store import QdrantStore

            with QdrantStore("docs", onnx_model, client=store.client) as searcher:
                assert searcher.model is onnx_model
                _assert_same_hits(_search_all(searcher), expected)
            return
    with EdgeStore(tmp_path / "store", onnx_model) as searcher:
        assert searcher.model is onnx_model
        _assert_same_hits(_search_all(searcher), expected)


def test_indexed_with_onnx_searched_and_extended_with_torch(
    tmp_path: Path, model: ColBERT, onnx_model: ColBERT
) -> None:
    texts, ids, metadatas = corpus()
    with EdgeStore(tmp_path / "store", onnx_model, datatype="float32") as store:
        store.add(texts[:40], ids[:40], metadatas[:40])
        expected = _search_all(store)
    with EdgeStore(tmp_path / "store", model) as store:
        _assert_same_hits(_search_all(store), expected)
        store.add(texts[40:], ids[40:], metadatas[40:])
        assert store.count() == len(texts)
        (hit,) = store.rerank(QUERIES[0], ["doc-45"])
    assert hit.score == pytest.approx(_pooled_score(model, QUERIES[0], texts[45], 1), rel=1e-5)


@pytest.mark.slow
def test_int8_queries_search_an_fp32_store(tmp_path: Path, shared_minilm: Path, shared_onnx_cache: Path) -> None:
    # Real weights: on random ones int8 error says nothing about what users would see.
    folder = shared_minilm
    fp32 = ColBERT.from_pretrained(folder, device="cpu")
    int8 = ColBERT.from_pretrained(folder, backend="onnx", quantize="int8", onnx_cache_dir=shared_onnx_cache)
    texts, ids, metadatas = corpus()
    with EdgeStore(tmp_path / "store", fp32, datatype="float32") as store:
        store.add(texts, ids, metadatas)
        expected, reference = _search_all(store), _rerank_all(store, ids)
    with EdgeStore(tmp_path / "store", int8) as store:
        got, quantized = _search_all(store), _rerank_all(store, ids)
    # Measured on these 60 documents and 3 queries: mean relative error 0.4-1.8% (3.5% at most), the same
    # top 10, rank correlation over all documents 0.997 or more. The bounds leave room for other CPUs.
    decided = 0
    for got_hits, expected_hits, exact, approximate in zip(got, expected, reference, quantized):
        assert len({doc_id for doc_id, _ in got_hits} & {doc_id for doc_id, _ in expected_hits}) >= 8
        fp32_scores = np.array([exact[doc_id] for doc_id in ids])
        int8_scores = np.array([approximate[doc_id] for doc_id in ids])
        assert float(np.mean(np.abs(int8_scores - fp32_scores) / fp32_scores)) < 0.03
        assert _rank_correlation(fp32_scores, int8_scores) > 0.99
        # The best hit stays wherever its fp32 lead over the second exceeds twice the largest int8 error;
        # a closer lead can swap ("rivers": doc-56 led doc-38 by 0.0014 with errors up to 0.034).
        error = float(np.max(np.abs(int8_scores - fp32_scores)))
        if expected_hits[0][1] - expected_hits[1][1] > 2 * error:
            assert got_hits[0][0] == expected_hits[0][0]
            decided += 1
    assert decided >= 1, "no query here has a lead wide enough to test the promise"


def _rerank_all(store: Any, ids: list[str]) -> list[dict[str, float]]:
    return [{hit.id: hit.score for hit in store.rerank(query, ids)} for query in QUERIES]


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (scores here do not tie)."""
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def _pooled_score(model: ColBERT, query: str, text: str, pool_factor: int) -> float:
    documents = model.encode_documents([text], pool_factor=pool_factor)
    return float(maxsim(model.encode_queries([query])[0], documents)[0])


def test_a_pooled_store_records_its_pool_factor_and_keeps_pooling(tmp_path: Path, model: ColBERT) -> None:
    texts, ids, _ = corpus(12)
    long_text = " ".join(f"word{i} about rivers and mountains" for i in range(20))
    with EdgeStore(tmp_path / "store", model.with_pool_factor(2), datatype="float32") as store:
        store.add(texts, ids)
    assert json.loads((tmp_path / "store" / SCHEMA_FILE).read_text())["pool_factor"] == 2
    # Opened with an unpooled encoder (the default), the store pools new documents as it pooled the old ones.
    with EdgeStore(tmp_path / "store", model) as store:
        assert store.schema.pool_factor == 2 and store.model.pool_factor == 2
        assert model.pool_factor == 1  # the caller's encoder is left as it was
        store.add([long_text], ["long"])
        (hit,) = store.rerank("rivers", ["long"])
    pooled, unpooled = _pooled_score(model, "rivers", long_text, 2), _pooled_score(model, "rivers", long_text, 1)
    assert hit.score == pytest.approx(pooled, rel=1e-5)
    assert abs(pooled - unpooled) > 1e-3
    # Opened by its recorded model name, the store loads the encoder with its pool factor too.
    with EdgeStore(tmp_path / "store") as store:
        assert store.model.pool_factor == 2


def test_a_store_refuses_a_pooling_it_was_not_made_with(tmp_path: Path, model: ColBERT) -> None:
    texts, ids, _ = corpus(6)
    with EdgeStore(tmp_path / "store", model.with_pool_factor(2)) as store:
        store.add(texts, ids)
    with pytest.raises(StoreError, match=r"pool_factor=2; opened with pool_factor=3") as refused:
        EdgeStore(tmp_path / "store", model.with_pool_factor(3))
    assert "new store" in str(refused.value)
    with pytest.raises(StoreError, match=r"pool_factor=2; opened with pool_factor=1"):
        EdgeStore(tmp_path / "store", model.name, pool_factor=1)
    with EdgeStore(tmp_path / "store", model.name, pool_factor=2) as store:
        assert store.count() == len(texts)
    with EdgeStore(tmp_path / "unpooled", model) as store:
        store.add(texts, ids)
    with pytest.raises(StoreError, match=r"pool_factor=1; opened with pool_factor=2"):
        EdgeStore(tmp_path / "unpooled", model.with_pool_factor(2))


def test_a_qdrant_collection_records_its_pool_factor(model: ColBERT) -> None:
    from qdrant_client import QdrantClient

    from edgecolbert.store import QdrantStore

    client = QdrantClient(":memory:")
    texts, ids, _ = corpus(6)
    with QdrantStore("docs", model.with_pool_factor(3), client=client) as store:
        store.add(texts, ids)
    with QdrantStore("docs", model, client=client) as store:
        assert store.schema.pool_factor == 3 and store.model.pool_factor == 3
    with pytest.raises(StoreError, match="pool_factor=3; opened with pool_factor=2"):
        QdrantStore("docs", model.with_pool_factor(2), client=client)


def test_a_store_written_before_pooling_was_recorded_reads_as_unpooled(tmp_path: Path, model: ColBERT) -> None:
    texts, ids, _ = corpus(6)
    with EdgeStore(tmp_path / "store", model) as store:
        store.add(texts, ids)
    schema_file = tmp_path / "store" / SCHEMA_FILE
    recorded = json.loads(schema_file.read_text())
    del recorded["pool_factor"]
    schema_file.write_text(json.dumps(recorded))
    with EdgeStore(tmp_path / "store", model) as store:
        assert store.schema.pool_factor == 1 and store.model is model
