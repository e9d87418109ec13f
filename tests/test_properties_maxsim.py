"""Properties of the MaxSim kernel and top-k: exact against brute force, or a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgecolbert import maxsim, topk
from edgecolbert.errors import EdgeColbertError, InvalidInputError, InvalidTypeError
from edgecolbert.vectors import MultiVectors

PROPERTY = settings(max_examples=40, deadline=None)
FINITE = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def query_and_documents(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray]]:
    dim = draw(st.integers(1, 12))
    query = draw(arrays(np.float32, (draw(st.integers(1, 6)), dim), elements=FINITE))
    n_docs = draw(st.integers(1, 8))
    docs = [draw(arrays(np.float32, (draw(st.integers(1, 9)), dim), elements=FINITE)) for _ in range(n_docs)]
    return query, docs


def brute_force(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    return np.array([(query.astype(np.float64) @ doc.astype(np.float64).T).max(axis=1).sum() for doc in docs])


@PROPERTY
@given(query_and_documents(), st.integers(1, 20))
def test_maxsim_equals_brute_force_for_any_chunking(case: tuple[np.ndarray, list[np.ndarray]], chunk_rows: int) -> None:
    query, docs = case
    scores = maxsim(query, docs, chunk_rows=chunk_rows)
    assert scores.shape == (len(docs),)
    np.testing.assert_allclose(scores, brute_force(query, docs), rtol=1e-4, atol=1e-3)
    # Several queries at once give the same rows as one at a time.
    both = maxsim([query, query[::-1]], MultiVectors.from_arrays(docs), chunk_rows=chunk_rows)
    np.testing.assert_allclose(both[0], scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(both[1], scores, rtol=1e-4, atol=1e-3)  # MaxSim ignores query token order


@PROPERTY
@given(query_and_documents(), st.data(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_vectors_are_refused_naming_the_text(
    case: tuple[np.ndarray, list[np.ndarray]], data: st.DataObject, bad: float
) -> None:
    query, docs = case
    in_query = data.draw(st.booleans())
    target = query if in_query else docs[data.draw(st.integers(0, len(docs) - 1))]
    row = data.draw(st.integers(0, target.shape[0] - 1))
    column = data.draw(st.integers(0, target.shape[1] - 1))
    target[row, column] = bad
    with pytest.raises(InvalidInputError, match="NaN or infinity") as caught:
        maxsim(query, docs, chunk_rows=data.draw(st.integers(1, 20)))
    if not in_query:
        position = next(i for i, doc in enumerate(docs) if not np.isfinite(doc).all())
        assert f"Document {position} " in str(caught.value)


@PROPERTY
@given(query_and_documents(), st.integers(1, 5))
def test_a_dimension_mismatch_is_refused(case: tuple[np.ndarray, list[np.ndarray]], extra: int) -> None:
    query, docs = case
    wider = [np.pad(doc, ((0, 0), (0, extra))) for doc in docs]
    with pytest.raises(InvalidInputError, match="dimensions"):
        maxsim(query, wider)
    with pytest.raises(InvalidInputError, match="share one dimension"):
        maxsim(query, [docs[0], wider[0]])


@pytest.mark.parametrize(
    ("documents", "error"),
    [
        (None, InvalidTypeError),
        (42, InvalidTypeError),
        (["not vectors"], InvalidInputError),
        ([[["a", "b"]]], InvalidInputError),
        ([np.ones(3, dtype=np.float32)], InvalidInputError),
        (np.ones((2, 3), dtype=np.float32), InvalidInputError),
        ([np.ones((0, 3), dtype=np.float32)], InvalidInputError),
    ],
)
def test_malformed_documents_raise_a_library_error(documents: object, error: type[EdgeColbertError]) -> None:
    with pytest.raises(error):
        maxsim(np.ones((2, 3), dtype=np.float32), documents)  # type: ignore[arg-type]


@PROPERTY
@given(
    arrays(np.float32, st.integers(0, 30), elements=st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.25])),
    st.one_of(st.none(), st.integers(1, 40)),
)
def test_topk_orders_best_first_and_keeps_ties_in_input_order(scores: np.ndarray, k: int | None) -> None:
    order = topk(scores, k)
    expected = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    assert order.tolist() == (expected if k is None else expected[:k])


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_topk_refuses_a_bad_k(k: object) -> None:
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        topk(np.ones(3), k)  # type: ignore[arg-type]
