"""Reranker: reorder first-stage candidates by MaxSim, with cached document encodings."""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecolbert.documents import (
    DocumentLike,
    RerankResult,
    RerankResults,
    Result,
    StoreDocument,
    as_document,
    check_top_k,
    present,
)
from edgecolbert.encoding.encoder import ColBERT, check_texts
from edgecolbert.errors import EmptyQueryError, InvalidDocumentError, InvalidInputError, InvalidTypeError
from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.vectors import MultiVectors

if TYPE_CHECKING:
    from edgecolbert.scoring.explain import Explanation
    from edgecolbert.store.base import BaseStore

__all__ = ["RerankResult", "RerankResults", "Reranker", "check_query", "check_query_vectors"]

logger = logging.getLogger(__name__)

# Scores of the documents a rerank scored, by their position in its input: (MaxSim, normalized MaxSim).
_Scores = dict[int, tuple[float, float]]


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
        # The model each store was last checked against: a check reads weights, so it runs once per pair.
        self._checked_stores: weakref.WeakKeyDictionary[BaseStore, ColBERT] = weakref.WeakKeyDictionary()

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

    @classmethod
    def load(
        cls,
        model: Reranker | ColBERT | str | os.PathLike[str] | None = None,
        *,
        store: BaseStore | None = None,
        **load_kwargs: Any,
    ) -> Reranker:
        """A reranker from whatever names the model: a ``Reranker`` (used as is), a loaded ``ColBERT``, a hub id
        or a folder (loaded with ``load_kwargs``). Without a model, ``store``'s own model, else the default one.

        With ``store``, raises :class:`~edgecolbert.ModelMismatchError` unless the store holds vectors of the model.
        """
        if isinstance(model, (Reranker, ColBERT)) and load_kwargs:
            raise InvalidInputError(
                f"Loading options ({', '.join(sorted(load_kwargs))}) apply to a hub id or folder; the "
                f"{type(model).__name__} given is loaded already."
            )
        if model is not None and not isinstance(model, (Reranker, ColBERT, str, os.PathLike)):
            raise InvalidTypeError(
                "model is a hub id, a folder, an edgecolbert.ColBERT or an edgecolbert.Reranker; "
                f"got {type(model).__name__}."
            )
        if isinstance(model, Reranker):
            reranker = model
        elif isinstance(model, ColBERT):
            reranker = cls(model)
        elif model is None and store is not None and not load_kwargs:
            # The store's own model: stored and encoded scores then share one scale.
            reranker = cls(store.model)
        else:
            reranker = cls.from_pretrained(model, **load_kwargs)
        if store is not None:
            reranker.check_store(store)
        return reranker

    def rerank(
        self,
        query: str,
        documents: Sequence[DocumentLike],
        top_k: int | None = None,
        *,
        store: BaseStore | None = None,
        highlight: bool = False,
    ) -> RerankResults:
        """Rank ``documents`` for ``query``, best first; ``top_k`` keeps only the best ones.

        Documents are strings, ``StoreDocument`` objects or mappings with ``text`` and optional ``id``
        and ``metadata``; each result carries its document's id (None for a string), metadata and
        position (``index``). With ``store``, a document whose ``id`` is stored there with the same text
        is scored from its stored vectors instead of being encoded; the others are encoded, and both
        kinds make one ranking (the store must hold vectors of this reranker's model). The results
        count both kinds (``stored``, ``encoded``), and the call logs them at INFO. ``highlight=True``
        adds each returned result's ``highlights`` (:func:`~edgecolbert.scoring.explain.highlight_texts`
        over the returned texts only, each re-encoded once without pooling).
        """
        check_query(query)
        docs = _checked_documents(documents)
        if top_k is not None:
            check_top_k(top_k)
        # One encoding of the query scores the stored documents, the encoded ones and the highlights;
        # an empty list scores nothing, so its query is not encoded.
        query_vectors = self.model.encode_query(query) if docs else np.empty((0, self.model.dim), np.float32)
        scores = self._stored_scores(query, query_vectors, docs, store) if store is not None else {}
        encoded = [position for position in range(len(docs)) if position not in scores]
        scores.update(self._encoded_scores(query_vectors, docs, encoded))
        if store is not None:
            logger.info(
                "Reranked %d documents: %d scored from vectors stored in %s, %d encoded.",
                len(docs),
                len(docs) - len(encoded),
                store.where,
                len(encoded),
            )
        ranked = topk(np.array([scores[position][0] for position in range(len(docs))], dtype=np.float64), top_k)
        results = [_result(docs[position], int(position), scores[position]) for position in ranked]
        if highlight:
            # Imported here: the explain module builds on this one's query check.
            from edgecolbert.scoring.explain import with_highlights

            results = with_highlights(self.model, query, results, query_vectors=query_vectors)
        return RerankResults(results, stored=len(docs) - len(encoded), encoded=len(encoded))

    async def arerank(
        self,
        query: str,
        documents: Sequence[DocumentLike],
        top_k: int | None = None,
        *,
        store: BaseStore | None = None,
        highlight: bool = False,
    ) -> RerankResults:
        """:meth:`rerank` in a worker thread, so the event loop keeps serving while the model runs."""
        return await asyncio.to_thread(self.rerank, query, documents, top_k, store=store, highlight=highlight)

    def check_store(self, store: BaseStore) -> None:
        """Raise :class:`~edgecolbert.ModelMismatchError` unless ``store`` holds vectors of this reranker's model.

        A stored score and an encoded one are comparable only when both come from one model.
        """
        if store.model is self.model or self._checked_stores.get(store) is self.model:
            return
        # Imported here: the store package imports this module.
        from edgecolbert.store.schema import check_model

        check_model(store.schema, self.model, store.where)
        self._checked_stores[store] = self.model

    def _encoded_scores(
        self, query_vectors: np.ndarray, docs: Sequence[StoreDocument], positions: Sequence[int]
    ) -> _Scores:
        if not positions:
            return {}
        n_query = len(query_vectors)
        scores = maxsim(query_vectors, self.document_vectors([docs[position].text for position in positions]))
        return {position: (float(score), float(score / n_query)) for position, score in zip(positions, scores.tolist())}

    def _stored_scores(
        self, query: str, query_vectors: np.ndarray, docs: Sequence[StoreDocument], store: BaseStore
    ) -> _Scores:
        """Scores of the documents ``store`` holds under their id with their text, by position.

        Only the id is looked up, never metadata: a stored point with other text (a stale copy, an
        unrelated document under a reused id) would score something else, so it is encoded instead.
        """
        self.check_store(store)
        from edgecolbert.store.schema import point_id

        keys = {position: point_id(str(doc.id)) for position, doc in enumerate(docs) if doc.id is not None}
        ids = {key: str(docs[position].id) for position, key in keys.items()}
        if not ids:
            return {}
        stored_texts = {point_id(present(hit.id, "id")): hit.text for hit in store.get(list(ids.values()))}
        chosen = {position: key for position, key in keys.items() if stored_texts.get(key) == docs[position].text}
        if not chosen:
            return {}
        hits = store.rerank(query, [ids[key] for key in dict.fromkeys(chosen.values())], query_vectors=query_vectors)
        by_key = {point_id(present(hit.id, "id")): hit for hit in hits}
        return {position: (by_key[key].score, _normalized(by_key[key])) for position, key in chosen.items()}

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
    """Refuse a query that is not a string or holds only whitespace."""
    if not isinstance(query, str):
        raise InvalidTypeError(f"The query must be a string, got {type(query).__name__}.")
    if not query.strip():
        raise EmptyQueryError("The query is empty or whitespace only: there is nothing to rank documents against.")


def check_query_vectors(query_vectors: object, dim: int) -> np.ndarray:
    """A caller's encoding of a query as ``[n_tokens, dim]`` float32 vectors, or an error saying what is wrong.

    For arguments that let a caller who encoded the query already (``ColBERT.encode_query``) pass it on,
    so one query is encoded once however many steps score it.
    """
    try:
        vectors = np.asarray(query_vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"query_vectors is not numeric ({exc}); pass model.encode_query(query).") from exc
    if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] != dim:
        raise InvalidInputError(
            f"query_vectors must be the query's [n_tokens, {dim}] vectors, as model.encode_query(query) returns "
            f"them; got shape {vectors.shape}."
        )
    if not np.isfinite(vectors).all():
        raise InvalidInputError("query_vectors holds NaN or infinity; pass model.encode_query(query).")
    return vectors


def _checked_documents(documents: Sequence[DocumentLike]) -> list[StoreDocument]:
    if isinstance(documents, StoreDocument):
        raise InvalidDocumentError("Expected a list of documents, got a single one: wrap it in a list.")
    items = check_texts(documents) if isinstance(documents, (str, bytes)) else _as_list(documents)
    for position, item in enumerate(items):
        if not isinstance(item, (str, StoreDocument, Mapping)):
            raise InvalidDocumentError(
                f"Document at position {position} is {type(item).__name__}; documents are strings, StoreDocument "
                "objects or mappings with a 'text' key."
            )
    docs = [as_document(item) for item in items]
    check_texts([doc.text for doc in docs])
    return docs


def _as_list(documents: Sequence[DocumentLike]) -> list[DocumentLike]:
    try:
        return list(documents)
    except TypeError as exc:
        raise InvalidDocumentError(f"Expected a list of documents, got {type(documents).__name__}.") from exc


def _normalized(hit: Result) -> float:
    assert hit.normalized_score is not None  # a store's rerank scores are MaxSim
    return hit.normalized_score


def _result(doc: StoreDocument, position: int, scores: tuple[float, float]) -> Result:
    return Result(
        id=None if doc.id is None else str(doc.id),
        text=doc.text,
        metadata=dict(doc.metadata),
        score=scores[0],
        normalized_score=scores[1],
        index=position,
    )
