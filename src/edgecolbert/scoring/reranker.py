"""Reranker: reorder first-stage candidates by MaxSim, with cached document encodings."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from edgecolbert.encoding.encoder import ColBERT, check_texts
from edgecolbert.errors import EmptyQueryError, InvalidInputError, InvalidTypeError
from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.vectors import MultiVectors

if TYPE_CHECKING:
    from edgecolbert.scoring.explain import Explanation


@dataclass(frozen=True)
class RerankResult:
    """One candidate after reranking.

    ``score`` is the raw MaxSim; ``normalized_score`` divides it by the query's vector count, which
    bounds it to [-1, 1] whatever the query length, so it can be thresholded.
    """

    index: int
    score: float
    normalized_score: float
    document: str


class RerankResults(Sequence[RerankResult]):
    """Results best first. ``results.top_k(3)`` keeps the first three."""

    def __init__(self, results: Sequence[RerankResult]) -> None:
        self._results = list(results)

    @overload
    def __getitem__(self, index: int) -> RerankResult: ...

    @overload
    def __getitem__(self, index: slice) -> RerankResults: ...

    def __getitem__(self, index: int | slice) -> RerankResult | RerankResults:
        if isinstance(index, slice):
            return RerankResults(self._results[index])
        return self._results[index]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[RerankResult]:
        return iter(self._results)

    def top_k(self, k: int) -> RerankResults:
        _check_top_k(k)
        return RerankResults(self._results[:k])

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {"index": r.index, "score": r.score, "normalized_score": r.normalized_score, "document": r.document}
            for r in self._results
        ]

    def __repr__(self) -> str:
        return f"RerankResults({self._results!r})"


class Reranker:
    """Reorders candidate texts for a query by MaxSim.

    Document encodings are kept in a bounded LRU cache keyed by model and content hash, so a
    candidate seen before is not encoded again. Safe to call from several threads at once.
    """

    def __init__(
        self,
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        cache_size: int = 4096,
        batch_size: int = 16,
        **load_kwargs: Any,
    ) -> None:
        self.model = model if isinstance(model, ColBERT) else ColBERT.from_pretrained(model, **load_kwargs)
        self.cache = EmbeddingCache(cache_size)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        cache_size: int = 4096,
        batch_size: int = 16,
        **load_kwargs: Any,
    ) -> Reranker:
        """Load a checkpoint (hub id or folder) and wrap it; other keywords go to ``ColBERT.from_pretrained``."""
        return cls(ColBERT.from_pretrained(name_or_path, **load_kwargs), cache_size=cache_size, batch_size=batch_size)

    def rerank(self, query: str, documents: Sequence[str], top_k: int | None = None) -> RerankResults:
        """Rank ``documents`` for ``query``, best first; ``top_k`` keeps only the best ones."""
        check_query(query)
        texts = check_texts(documents)
        if top_k is not None:
            _check_top_k(top_k)
        if not texts:
            return RerankResults([])
        query_vectors = self.model.encode_queries([query])
        scores = maxsim(query_vectors[0], self.document_vectors(texts))
        n_query = query_vectors.lengths[0]
        return RerankResults(
            [
                RerankResult(
                    index=int(i),
                    score=float(scores[i]),
                    normalized_score=float(scores[i] / n_query),
                    document=texts[i],
                )
                for i in topk(scores, top_k)
            ]
        )

    async def arerank(self, query: str, documents: Sequence[str], top_k: int | None = None) -> RerankResults:
        """:meth:`rerank` in a worker thread, so the event loop keeps serving while the model runs."""
        return await asyncio.to_thread(self.rerank, query, documents, top_k)

    def explain(self, query: str, document: str) -> Explanation:
        """Why ``document`` scored what it did: see :func:`edgecolbert.scoring.explain.explain`.

        Encodes the document afresh (unpooled, with its token spans); the cache holds no spans.
        """
        # Imported here: the explain module builds on this one's query check.
        from edgecolbert.scoring.explain import explain

        return explain(self.model, query, document)

    def document_vectors(self, documents: Sequence[str]) -> MultiVectors:
        """Vectors of each document in order, encoding only those not cached (each distinct text once)."""
        texts = check_texts(documents)
        keys = [(self.model.fingerprint, content_hash(text)) for text in texts]
        found: dict[tuple[str, str], np.ndarray] = {}
        for key in dict.fromkeys(keys):
            cached = self.cache.get(key)
            if cached is not None:
                found[key] = cached
        missing = {key: text for key, text in zip(keys, texts) if key not in found}
        if missing:
            encoded = self.model.encode_documents(list(missing.values()), batch_size=self.batch_size)
            for key, vectors in zip(missing, encoded):
                found[key] = vectors
                self.cache.put(key, vectors)
        return MultiVectors.from_arrays([found[key] for key in keys], dim=self.model.dim)


def check_query(query: str) -> None:
    if not isinstance(query, str):
        raise InvalidTypeError(f"The query must be a string, got {type(query).__name__}.")
    if not query.strip():
        raise EmptyQueryError("The query is empty or whitespace only: there is nothing to rank documents against.")


def _check_top_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"top_k must be a positive integer (or None for all), got {k!r}.")
