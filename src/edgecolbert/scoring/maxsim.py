"""Exact MaxSim over packed candidates: ``score(q, d) = Σ_i max_j <q_i, d_j>``.

Candidates stay packed end to end (no padding), so padded positions can never win a max, and
the work is one matrix product per chunk followed by a segmented max: close to the cost of the
product itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgecolbert.documents import check_top_k
from edgecolbert.errors import MISSING, InvalidInputError, InvalidTypeError, renamed_keyword
from edgecolbert.vectors import MultiVectors

# Candidate vectors per matrix product: the similarity block (query vectors x chunk_rows floats,
# 512 KB for a 32-token query) stays in a core's L2 cache while each product is still large.
DEFAULT_CHUNK_ROWS = 4096
# Many queries at once shrink the chunk so the block stays within 16 MB.
_MAX_BLOCK_FLOATS = 1 << 22

VectorsLike = MultiVectors | Sequence[np.ndarray]


def maxsim(
    query: np.ndarray | VectorsLike,
    documents: VectorsLike,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """MaxSim scores of one query (``[q, dim]`` array → ``[n_docs]``) or several (→ ``[n_queries, n_docs]``)."""
    docs = as_multivectors(documents, "documents")
    if isinstance(query, np.ndarray) and query.ndim == 2:
        queries = MultiVectors(query, np.array([0, query.shape[0]]))
        return _maxsim_packed(queries, docs, chunk_rows)[0]
    return _maxsim_packed(as_multivectors(query, "queries"), docs, chunk_rows)


def as_multivectors(vectors: np.ndarray | VectorsLike, what: str) -> MultiVectors:
    if isinstance(vectors, MultiVectors):
        return vectors
    if isinstance(vectors, np.ndarray):
        raise InvalidInputError(f"{what} must be a MultiVectors or a list of [n_tokens, dim] arrays, not one array.")
    try:
        arrays = list(vectors)
    except TypeError as exc:
        raise InvalidTypeError(
            f"{what} must be a MultiVectors or a list of [n_tokens, dim] arrays, got {type(vectors).__name__}."
        ) from exc
    return MultiVectors.from_arrays(arrays)


def _maxsim_packed(queries: MultiVectors, docs: MultiVectors, chunk_rows: int) -> np.ndarray:
    if not isinstance(chunk_rows, (int, np.integer)) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}.")
    if len(docs) == 0 or len(queries) == 0:
        return np.zeros((len(queries), len(docs)), dtype=np.float32)
    if queries.dim != docs.dim:
        raise InvalidInputError(f"Query vectors have {queries.dim} dimensions but documents have {docs.dim}.")
    _require_vectors(queries, "Query")
    _require_vectors(docs, "Document")
    q_data = np.ascontiguousarray(queries.data, dtype=np.float32)
    _require_finite(q_data, queries.offsets, 0, "Query")
    q_starts = queries.offsets[:-1]
    scores = np.empty((len(queries), len(docs)), dtype=np.float32)
    # Similarities are laid out [query vector, candidate vector] so each document's max runs over
    # contiguous memory, and one reused block keeps them in cache instead of faulting in fresh pages.
    rows_per_block = max(1, min(int(chunk_rows), _MAX_BLOCK_FLOATS // q_data.shape[0]))
    block = np.empty((q_data.shape[0], rows_per_block), dtype=np.float32)
    for first, last in _chunks(docs.offsets, rows_per_block):
        row_start, row_end = docs.offsets[first], docs.offsets[last]
        rows = row_end - row_start
        if rows > block.shape[1]:
            block = np.empty((q_data.shape[0], rows), dtype=np.float32)
        sims = block[:, :rows]
        candidates = np.asarray(docs.data[row_start:row_end], dtype=np.float32)
        # NaN or infinity would make a score NaN (ranked anywhere) or hide behind a max: refuse it.
        _require_finite(candidates, docs.offsets[first : last + 1] - row_start, first, "Document")
        np.matmul(q_data, candidates.T, out=sims)
        per_doc = np.maximum.reduceat(sims, docs.offsets[first:last] - row_start, axis=1)
        scores[:, first:last] = np.add.reduceat(per_doc, q_starts, axis=0)
    return scores


def _require_vectors(vectors: MultiVectors, what: str) -> None:
    empty = np.flatnonzero(vectors.lengths == 0)
    if empty.size:
        raise InvalidInputError(f"{what} {int(empty[0])} has no vectors; MaxSim needs at least one per text.")


def _require_finite(rows: np.ndarray, offsets: np.ndarray, first: int, what: str) -> None:
    if np.isfinite(rows).all():
        return
    bad_row = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
    position = first + int(np.searchsorted(offsets, bad_row, side="right")) - 1
    raise InvalidInputError(
        f"{what} {position} holds NaN or infinity; MaxSim needs finite vectors (check how they were made)."
    )


def _chunks(offsets: np.ndarray, chunk_rows: int) -> list[tuple[int, int]]:
    """Split documents into runs of whole documents holding about ``chunk_rows`` vectors each."""
    n_docs = offsets.size - 1
    spans = []
    first = 0
    while first < n_docs:
        last = int(np.searchsorted(offsets, offsets[first] + chunk_rows, side="right")) - 1
        last = min(max(last, first + 1), n_docs)
        spans.append((first, last))
        first = last
    return spans


def topk(scores: np.ndarray, top_k: int | None = None, *, k: Any = MISSING) -> np.ndarray:
    """Indices of the ``top_k`` best scores, best first; ties keep input order. ``None`` ranks all.

    ``k=`` is the deprecated name of ``top_k``.
    """
    top_k = renamed_keyword("k", "top_k", k, top_k, None)
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise InvalidInputError(f"topk takes a 1-D array of scores, got shape {scores.shape}.")
    if top_k is not None:
        check_top_k(top_k)
    order = np.argsort(-scores, kind="stable")
    return order if top_k is None else order[:top_k]
