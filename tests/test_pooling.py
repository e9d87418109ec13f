"""Token pooling: fewer document vectors, still unit length, and nothing changes at pool_factor 1."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import edgecolbert
from edgecolbert import ColBERT, InvalidInputError
from edgecolbert.encoding.pooling import pool_documents, pool_tokens
from edgecolbert.errors import MissingDependencyError

pytest.importorskip("scipy", reason="token pooling clusters with scipy")

DOCUMENTS = [
    "Late interaction models keep one vector per token and score with MaxSim.",
    "",
    "Paris.",
    "Paris is the capital and largest city of France; Berlin is the capital of Germany. " * 3,
]


def _unit_rows(rng: np.random.Generator, n: int, dim: int = 24) -> np.ndarray:
    rows = rng.standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("pool_factor", [2, 3, 4])
@pytest.mark.parametrize("n_tokens", [3, 4, 17, 120])
def test_counts_shrink_by_the_factor(pool_factor: int, n_tokens: int) -> None:
    vectors = _unit_rows(np.random.default_rng(n_tokens), n_tokens)
    pooled = pool_tokens(vectors, pool_factor)
    # The first vector is kept as is; the rest become max(1, rest // factor) cluster means.
    assert pooled.shape == (1 + max(1, (n_tokens - 1) // pool_factor), vectors.shape[1])
    np.testing.assert_array_equal(pooled[0], vectors[0])
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)
    assert pooled.dtype == vectors.dtype


def test_duplicate_tokens_merge_into_their_direction() -> None:
    rng = np.random.default_rng(0)
    directions = _unit_rows(rng, 3)
    # Near-copies of three directions, shuffled: three clusters must recover the three directions.
    noisy = np.repeat(directions, 4, axis=0) + rng.normal(scale=1e-3, size=(12, 24)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    rest = noisy[rng.permutation(12)]
    cls = _unit_rows(rng, 1)
    pooled = pool_tokens(np.concatenate([cls, rest]), pool_factor=4)
    assert pooled.shape == (4, 24)
    similarity = pooled[1:] @ directions.T
    assert np.all(similarity.max(axis=1) > 0.999)
    assert sorted(similarity.argmax(axis=1).tolist()) == [0, 1, 2]


def test_pool_factor_one_and_short_documents_are_unchanged() -> None:
    vectors = _unit_rows(np.random.default_rng(1), 30)
    assert pool_tokens(vectors, 1) is vectors
    for n in (0, 1, 2):
        short = vectors[:n]
        assert pool_tokens(short, 3) is short
    assert [doc.shape for doc in pool_documents([vectors, vectors[:2]], 2)] == [(15, 24), (2, 24)]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_pool_factor_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="pool_factor must be a positive integer"):
        pool_tokens(_unit_rows(np.random.default_rng(2), 10), bad)  # type: ignore[arg-type]


def test_encoder_pools_documents_not_queries(model: ColBERT) -> None:
    full = model.encode_documents(DOCUMENTS)
    same = model.encode_documents(DOCUMENTS, pool_factor=1)
    np.testing.assert_array_equal(same.data, full.data)
    np.testing.assert_array_equal(same.offsets, full.offsets)
    for factor in (2, 3):
        pooled = model.encode_documents(DOCUMENTS, pool_factor=factor)
        expected = [n if n < 3 else 1 + max(1, (n - 1) // factor) for n in full.lengths]
        assert pooled.lengths.tolist() == expected
        np.testing.assert_allclose(np.linalg.norm(pooled.data, axis=1), 1.0, atol=1e-5)
        assert pooled.data.shape[0] < full.data.shape[0]
    with pytest.raises(InvalidInputError, match="pool_factor"):
        model.encode_documents(DOCUMENTS, pool_factor=0)


def test_model_default_pool_factor(model: ColBERT) -> None:
    pooled_model = ColBERT.from_pretrained(model.spec.path, device="cpu", pool_factor=2)
    assert pooled_model.pool_factor == 2 and "pool_factor=2" in repr(pooled_model)
    assert pooled_model.fingerprint != model.fingerprint
    docs = pooled_model.encode_documents(DOCUMENTS)
    np.testing.assert_array_equal(docs.data, model.encode_documents(DOCUMENTS, pool_factor=2).data)
    np.testing.assert_array_equal(
        pooled_model.encode_documents(DOCUMENTS, pool_factor=1).data, model.encode_documents(DOCUMENTS).data
    )
    query = "capital of France"
    np.testing.assert_array_equal(pooled_model.encode_query(query), model.encode_query(query))
    # A pooled model still ranks: every document gets a score and the reranker orders them.
    results = edgecolbert.Reranker(pooled_model, cache_size=0).rerank(query, DOCUMENTS[:1] + DOCUMENTS[2:])
    assert len(results) == 3 and results[0].score >= results[-1].score
    with pytest.raises(InvalidInputError, match="pool_factor"):
        ColBERT.from_pretrained(model.spec.path, device="cpu", pool_factor=-1)


def test_missing_scipy_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.cluster", None)
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(MissingDependencyError, match="scipy"):
        pool_tokens(_unit_rows(np.random.default_rng(3), 10), 2)
