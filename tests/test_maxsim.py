"""maxsim and topk against a naive reference on ragged random data."""

from __future__ import annotations

import numpy as np
import pytest

from edgecolbert import InvalidInputError, MultiVectors, maxsim, topk

RTOL = 1e-5
ATOL = 1e-5


def naive_maxsim(query: np.ndarray, documents) -> np.ndarray:
    """Σ_i max_j <q_i, d_j> for each document, one python loop iteration per document."""
    q = np.asarray(query, dtype=np.float64)
    return np.array([(q @ np.asarray(d, dtype=np.float64).T).max(axis=1).sum() for d in documents])


def _ragged(rng, lengths, dim):
    return [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1234)
    dim = 16
    doc_lengths = [7, 1, 13, 3, 30, 2, 9, 1, 21, 5, 4, 17]
    docs = _ragged(rng, doc_lengths, dim)
    queries = _ragged(rng, [5, 1, 12, 32], dim)
    return queries, docs


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- scores


def test_single_query_matches_reference(data):
    queries, docs = data
    mv = MultiVectors.from_arrays(docs)
    for query in queries:
        scores = maxsim(query, mv)
        assert scores.shape == (len(docs),)
        assert scores.dtype == np.float32
        _close(scores, naive_maxsim(query, docs))


def test_documents_as_list_of_arrays(data):
    queries, docs = data
    scores = maxsim(queries[0], docs)
    assert scores.shape == (len(docs),)
    _close(scores, naive_maxsim(queries[0], docs))
    _close(maxsim(queries[0], tuple(docs)), naive_maxsim(queries[0], docs))


@pytest.mark.parametrize("as_multivectors", [True, False], ids=["multivectors", "list"])
def test_batched_queries_match_reference(data, as_multivectors):
    queries, docs = data
    batch = MultiVectors.from_arrays(queries) if as_multivectors else list(queries)
    scores = maxsim(batch, MultiVectors.from_arrays(docs))
    assert scores.shape == (len(queries), len(docs))
    expected = np.stack([naive_maxsim(q, docs) for q in queries])
    _close(scores, expected)


def test_batched_single_query_keeps_2d_shape(data):
    queries, docs = data
    scores = maxsim([queries[0]], docs)
    assert scores.shape == (1, len(docs))
    _close(scores[0], naive_maxsim(queries[0], docs))


def test_chunk_rows_does_not_change_scores(data):
    queries, docs = data
    mv = MultiVectors.from_arrays(docs)
    expected = np.stack([naive_maxsim(q, docs) for q in queries])
    total = int(mv.data.shape[0])
    # 1: one document per chunk; 5, 8, 11, 29: boundaries fall inside documents (7, 13, 30, ... rows)
    # so chunks must be widened to whole documents; total-1, total, 10*total: one or two chunks.
    results = {}
    for chunk_rows in (1, 2, 5, 8, 11, 29, 31, total - 1, total, 10 * total):
        got = maxsim(queries, mv, chunk_rows=chunk_rows)
        assert got.shape == expected.shape
        _close(got, expected)
        results[chunk_rows] = got
    reference = results[10 * total]
    for got in results.values():
        np.testing.assert_allclose(got, reference, rtol=1e-6, atol=1e-6)


def test_chunk_rows_with_single_query(data):
    queries, docs = data
    for chunk_rows in (1, 3, 12):
        _close(maxsim(queries[2], docs, chunk_rows=chunk_rows), naive_maxsim(queries[2], docs))


def test_float16_inputs_are_accepted(data):
    queries, docs = data
    q16 = queries[1].astype(np.float16)
    d16 = [d.astype(np.float16) for d in docs]
    # The reference sees the same (rounded) float16 values, upcast.
    expected = naive_maxsim(q16.astype(np.float32), [d.astype(np.float32) for d in d16])
    _close(maxsim(q16, d16), expected)
    mv16 = MultiVectors(np.concatenate(d16), MultiVectors.from_arrays(docs).offsets)
    assert mv16.data.dtype == np.float16
    scores = maxsim(q16, mv16, chunk_rows=4)
    assert scores.dtype == np.float32
    _close(scores, expected)
    _close(maxsim([q16, queries[0].astype(np.float16)], mv16)[0], expected)


def test_float64_inputs_are_accepted(data):
    queries, docs = data
    scores = maxsim(queries[0].astype(np.float64), [d.astype(np.float64) for d in docs])
    _close(scores, naive_maxsim(queries[0], docs))


def _negative_case():
    """Query token 1 is similar to nothing: its dot product with every document token is negative."""
    q = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    docs = [
        np.array([[1.0, 0.0, -0.5], [0.5, 0.5, -0.2]], dtype=np.float32),  # long doc
        np.array([[0.8, 0.1, -0.3]], dtype=np.float32),  # short doc: padded when batched
        np.array([[0.0, 1.0, -0.9], [0.6, 0.0, -0.1], [0.1, 0.1, -0.7]], dtype=np.float32),
    ]
    return q, docs


def test_negative_similarities_count_their_true_max():
    q, docs = _negative_case()
    assert all((q[1] @ d.T).max() < 0 for d in docs), "test data must have an all-negative query token"
    expected = naive_maxsim(q, docs)
    # Hand-computed: doc0 max(1, .5) + max(-.5, -.2) = 0.8; doc1 0.8 - 0.3 = 0.5; doc2 0.6 - 0.1 = 0.5.
    np.testing.assert_allclose(expected, [0.8, 0.5, 0.5], atol=1e-6)

    # A zero-padded batched einsum gets this wrong: padded rows score 0 and win the max.
    width = max(d.shape[0] for d in docs)
    padded = np.zeros((len(docs), width, q.shape[1]), dtype=np.float32)
    for i, d in enumerate(docs):
        padded[i, : d.shape[0]] = d
    padded_scores = np.einsum("qd,nkd->nqk", q, padded).max(axis=2).sum(axis=1)
    assert not np.allclose(padded_scores, expected, atol=1e-3), "the padding artefact must be visible"

    for chunk_rows in (1, 2, 3, 100):
        _close(maxsim(q, docs, chunk_rows=chunk_rows), expected)
        _close(maxsim([q], MultiVectors.from_arrays(docs), chunk_rows=chunk_rows)[0], expected)


def test_all_negative_scores_stay_negative():
    rng = np.random.default_rng(5)
    q = np.abs(rng.standard_normal((4, 8))).astype(np.float32)
    docs = [-np.abs(rng.standard_normal((n, 8))).astype(np.float32) for n in (1, 6, 3)]
    scores = maxsim(q, docs)
    assert np.all(scores < 0)
    _close(scores, naive_maxsim(q, docs))


def test_zero_documents_give_empty_result(data):
    queries, _ = data
    empty = MultiVectors(np.zeros((0, 16), dtype=np.float32), np.zeros(1, dtype=np.int64))
    single = maxsim(queries[0], empty)
    assert single.shape == (0,)
    batched = maxsim(queries, empty)
    assert batched.shape == (len(queries), 0)


def test_zero_documents_as_empty_list(data):
    queries, _ = data
    assert maxsim(queries[0], []).shape == (0,)
    assert maxsim(queries, []).shape == (len(queries), 0)


def test_zero_queries_give_empty_result(data):
    _, docs = data
    empty_queries = MultiVectors(np.zeros((0, 16), dtype=np.float32), np.zeros(1, dtype=np.int64))
    assert maxsim(empty_queries, docs).shape == (0, len(docs))


# --------------------------------------------------------------------------- maxsim errors


def test_dimension_mismatch_raises(data):
    queries, docs = data
    with pytest.raises(InvalidInputError, match="dimensions"):
        maxsim(queries[0][:, :8], docs)
    with pytest.raises(InvalidInputError, match="dimensions"):
        maxsim([queries[0][:, :8]], MultiVectors.from_arrays(docs))


def test_document_without_vectors_raises(data):
    queries, docs = data
    with_empty = docs[:3] + [np.zeros((0, 16), dtype=np.float32)] + docs[3:]
    with pytest.raises(InvalidInputError, match="Document 3"):
        maxsim(queries[0], with_empty)
    with pytest.raises(InvalidInputError, match="Document 3"):
        maxsim(queries[0], MultiVectors.from_arrays(with_empty))


def test_query_without_vectors_raises(data):
    queries, docs = data
    with pytest.raises(InvalidInputError, match="Query"):
        maxsim([queries[0], np.zeros((0, 16), dtype=np.float32)], docs)


def test_bare_2d_array_as_documents_raises(data):
    queries, docs = data
    with pytest.raises(InvalidInputError, match="not one array"):
        maxsim(queries[0], np.concatenate(docs))


@pytest.mark.parametrize("chunk_rows", [0, -1, -100])
def test_non_positive_chunk_rows_raises(data, chunk_rows):
    queries, docs = data
    with pytest.raises(InvalidInputError, match="chunk_rows"):
        maxsim(queries[0], docs, chunk_rows=chunk_rows)


def test_non_integer_chunk_rows_raises(data):
    queries, docs = data
    with pytest.raises(InvalidInputError, match="chunk_rows"):
        maxsim(queries[0], docs, chunk_rows=2.5)


# --------------------------------------------------------------------------- topk


def test_topk_best_first():
    scores = np.array([0.1, 0.9, -0.3, 0.5, 0.7], dtype=np.float32)
    np.testing.assert_array_equal(topk(scores, 3), [1, 4, 3])
    np.testing.assert_array_equal(topk(scores, 1), [1])


def test_topk_ties_keep_input_order():
    scores = np.array([0.5, 1.0, 0.5, 1.0, 0.5, 0.2])
    np.testing.assert_array_equal(topk(scores), [1, 3, 0, 2, 4, 5])
    np.testing.assert_array_equal(topk(scores, 4), [1, 3, 0, 2])
    np.testing.assert_array_equal(topk(np.zeros(5)), [0, 1, 2, 3, 4])


def test_topk_none_ranks_all():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal(50)
    order = topk(scores)
    assert sorted(order.tolist()) == list(range(50))
    assert np.all(np.diff(scores[order]) <= 0)
    np.testing.assert_array_equal(topk(scores, None), order)


def test_topk_k_larger_than_n():
    scores = [0.2, 0.8, 0.5]
    np.testing.assert_array_equal(topk(scores, 10), [1, 2, 0])


def test_topk_accepts_numpy_integer_k():
    np.testing.assert_array_equal(topk([0.2, 0.8, 0.5], np.int64(2)), [1, 2])


def test_topk_empty_scores():
    assert topk(np.array([]), 3).shape == (0,)


@pytest.mark.parametrize("k", [0, -1, True, False, 2.0, "3"])
def test_topk_rejects_bad_k(k):
    with pytest.raises(InvalidInputError, match="k must be"):
        topk([0.1, 0.2, 0.3], k)


def test_topk_k_is_the_deprecated_name_of_top_k():
    with pytest.warns(DeprecationWarning, match="k= is deprecated"):
        np.testing.assert_array_equal(topk([0.2, 0.8, 0.5], k=2), topk([0.2, 0.8, 0.5], top_k=2))


def test_topk_rejects_2d_scores():
    with pytest.raises(InvalidInputError, match="1-D"):
        topk(np.zeros((2, 3)), 1)


def test_topk_nan_sorts_last():
    scores = np.array([0.3, np.nan, 0.9, np.nan, -1.0], dtype=np.float32)
    order = topk(scores)
    np.testing.assert_array_equal(order[:3], [2, 0, 4])
    assert set(order[3:].tolist()) == {1, 3}
    np.testing.assert_array_equal(topk(scores, 3), [2, 0, 4])


def test_topk_of_maxsim_matches_reference_ranking(data):
    queries, docs = data
    scores = maxsim(queries[3], docs)
    expected = np.argsort(-naive_maxsim(queries[3], docs), kind="stable")
    np.testing.assert_array_equal(topk(scores, 5), expected[:5])
