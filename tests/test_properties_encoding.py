"""Properties of encoding and reranking: any text gives finite unit vectors, rankings match brute force."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecolbert import ColBERT, Reranker
from edgecolbert.errors import EmptyQueryError, InvalidDocumentError, InvalidInputError, InvalidTypeError
from text_strategies import AWKWARD, QUERY, TEXT

PROPERTY = settings(max_examples=12, deadline=None)


@pytest.fixture(scope="module")
def reranker(model: ColBERT) -> Reranker:
    return Reranker(model, cache_size=64)


def assert_unit_rows(vectors: np.ndarray, dim: int) -> None:
    assert vectors.ndim == 2 and vectors.shape[1] == dim and vectors.shape[0] >= 1
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)


@pytest.mark.slow
@PROPERTY
@given(texts=st.lists(TEXT, max_size=6))
def test_any_documents_encode_to_finite_unit_vectors_independent_of_the_batch(model: ColBERT, texts: list[str]) -> None:
    encoded = model.encode_documents(texts, batch_size=2)
    assert len(encoded) == len(texts)
    for text, vectors in zip(texts, encoded):
        assert_unit_rows(vectors, model.dim)
        assert vectors.shape[0] <= model.document_length
        # Batching pads; padding must never change a text's vectors.
        np.testing.assert_allclose(model.encode_documents([text])[0], vectors, atol=1e-5)


@PROPERTY
@given(texts=st.lists(TEXT, min_size=1, max_size=4))
def test_any_queries_encode_to_finite_unit_vectors(model: ColBERT, texts: list[str]) -> None:
    encoded = model.encode_queries(texts)
    assert len(encoded) == len(texts)
    for vectors in encoded:
        assert_unit_rows(vectors, model.dim)
        assert vectors.shape[0] <= model.query_length


def test_a_100k_character_document_is_truncated_to_the_document_length(
    model: ColBERT, caplog: pytest.LogCaptureFixture
) -> None:
    text = "".join(AWKWARD) * 2000 + " word" * 20_000
    with caplog.at_level("WARNING", logger="edgecolbert"):
        [vectors] = model.encode_documents([text[:100_000]])
    assert_unit_rows(vectors, model.dim)
    assert vectors.shape[0] <= model.document_length
    assert any("truncated" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("texts", [[None], [b"bytes"], ["ok", 3], [["nested"]], "a string", None, 5])
def test_non_string_inputs_are_invalid_documents(model: ColBERT, texts: object) -> None:
    with pytest.raises(InvalidDocumentError):
        model.encode_documents(texts)  # type: ignore[arg-type]
    with pytest.raises(InvalidDocumentError):
        model.encode_queries(texts)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "8"])
def test_a_bad_batch_size_is_refused(model: ColBERT, batch_size: object) -> None:
    with pytest.raises(InvalidInputError, match="batch_size"):
        model.encode_documents(["text"], batch_size=batch_size)  # type: ignore[arg-type]


def brute_force_order(model: ColBERT, query: str, documents: list[str]) -> tuple[list[int], np.ndarray]:
    q = model.encode_query(query).astype(np.float64)
    scores = np.array([(q @ d.astype(np.float64).T).max(axis=1).sum() for d in model.encode_documents(documents)])
    return sorted(range(len(documents)), key=lambda i: (-scores[i], i)), scores


@pytest.mark.slow
@PROPERTY
@given(query=QUERY, documents=st.lists(TEXT, max_size=8), top_k=st.one_of(st.none(), st.integers(1, 10)))
def test_rerank_matches_numpy_brute_force(
    reranker: Reranker, query: str, documents: list[str], top_k: int | None
) -> None:
    results = reranker.rerank(query, documents, top_k=top_k)
    order, scores = brute_force_order(reranker.model, query, documents)
    assert len(results) == (len(documents) if top_k is None else min(top_k, len(documents)))
    assert [r.document for r in results] == [documents[r.index] for r in results]
    np.testing.assert_allclose([r.score for r in results], scores[[r.index for r in results]], rtol=1e-4, atol=1e-4)
    got = [r.score for r in results]
    assert got == sorted(got, reverse=True)
    # Equal up to float rounding: where brute force differs from the ranking, the two scores tie.
    for mine, theirs in zip([r.index for r in results], order):
        assert scores[mine] == pytest.approx(scores[theirs], rel=1e-4, abs=1e-4)
    assert all(-1.0 - 1e-5 <= r.normalized_score <= 1.0 + 1e-5 for r in results)
    assert len(reranker.cache) <= reranker.cache.max_documents


@settings(max_examples=10, deadline=None)
@given(query=QUERY, documents=st.lists(TEXT, min_size=1, max_size=5))
def test_arerank_equals_rerank(reranker: Reranker, query: str, documents: list[str]) -> None:
    expected = reranker.rerank(query, documents).to_list()
    assert asyncio.run(reranker.arerank(query, documents)).to_list() == expected


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "\u3000"])
def test_blank_queries_raise_empty_query(reranker: Reranker, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        reranker.rerank(query, ["document"])


@pytest.mark.parametrize(
    ("query", "documents", "error"),
    [
        (None, ["d"], InvalidTypeError),
        (b"q", ["d"], InvalidTypeError),
        ("q", ["d", None], InvalidDocumentError),
        ("q", "a string", InvalidDocumentError),
        ("q", None, InvalidDocumentError),
    ],
)
def test_rerank_refuses_non_strings(reranker: Reranker, query: object, documents: object, error: type) -> None:
    with pytest.raises(error):
        reranker.rerank(query, documents)  # type: ignore[arg-type]


@pytest.mark.parametrize("top_k", [0, -3, 2.0, True])
def test_rerank_refuses_a_bad_top_k(reranker: Reranker, top_k: object) -> None:
    with pytest.raises(InvalidInputError, match="top_k"):
        reranker.rerank("query", ["a", "b"], top_k=top_k)  # type: ignore[arg-type]
