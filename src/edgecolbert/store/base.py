"""Engine-neutral store logic: ids, idempotent writes, query plans, hits.

Both engines subclass :class:`BaseStore` and supply an :class:`~edgecolbert.store.engine.Engine`, so the
schema, the write rules and the search semantics exist once and give the same results everywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, Protocol, runtime_checkable

import numpy as np
from typing_extensions import Self

from edgecolbert.documents import DocumentLike, Hit, StoreDocument, as_document
from edgecolbert.encoding.encoder import ColBERT, check_texts
from edgecolbert.errors import MISSING, DocumentNotFoundError, InvalidInputError, InvalidTypeError, renamed_keyword
from edgecolbert.scoring.cache import content_hash
from edgecolbert.scoring.explain import Explanation, explain, with_highlights
from edgecolbert.scoring.muvera import FdeParams
from edgecolbert.scoring.reranker import check_query, check_query_vectors
from edgecolbert.store.backfill import add_muvera
from edgecolbert.store.engine import (
    Engine,
    FirstStage,
    PointId,
    PreparedPoint,
    QueryPlan,
    SparseTerms,
    StoredPoint,
)
from edgecolbert.store.filters import MetadataFilter, parse_filter
from edgecolbert.store.muvera_stage import document_encodings, query_stage
from edgecolbert.store.ranking import exact_top, first_stage_top, with_payloads
from edgecolbert.store.schema import (
    BM25,
    COLBERT,
    HASH_KEY,
    ID_KEY,
    StoreSchema,
    content_id,
    point_id,
)
from edgecolbert.store.stages import HYBRID_MUVERA_SHARE, MUVERA_STAGES, FirstStageName, check_first_stage

logger = logging.getLogger(__name__)


@runtime_checkable
class DenseEmbedder(Protocol):
    """A first-stage dense model. LangChain ``Embeddings`` objects already have this shape."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


@dataclass
class AddReport:
    """What a write did: new documents, re-encoded ones, metadata-only updates and unchanged ones."""

    added: int = 0
    reencoded: int = 0
    metadata_updated: int = 0
    unchanged: int = 0
    truncated: int = 0

    @property
    def seen(self) -> int:
        return self.added + self.reencoded + self.metadata_updated + self.unchanged

    def merge(self, other: AddReport) -> None:
        self.added += other.added
        self.reencoded += other.reencoded
        self.metadata_updated += other.metadata_updated
        self.unchanged += other.unchanged
        self.truncated += other.truncated


class MultiVectorStore(Protocol):
    """What every store offers; :class:`EdgeStore` and :class:`QdrantStore` both implement it."""

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str | int] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        dense_vectors: Sequence[Sequence[float]] | None = None,
    ) -> list[str]: ...

    def add_documents(
        self,
        documents: Iterable[DocumentLike],
        *,
        batch_size: int = 256,
        progress: bool = False,
        total: int | None = None,
        on_batch: Callable[[list[str]], None] | None = None,
    ) -> AddReport: ...

    def delete(self, ids: Sequence[str | int]) -> None: ...

    def get(self, ids: Sequence[str | int]) -> list[Hit]: ...

    def count(self) -> int: ...

    def search(
        self,
        query: str,
        top_k: int = 10,
        prefetch_k: int = 100,
        first_stage: FirstStageName | None = None,
        filter: MetadataFilter | None = None,
        *,
        dense_vector: Sequence[float] | None = None,
        highlight: bool = False,
        k: Any = MISSING,
    ) -> list[Hit]: ...

    def search_first_stage(
        self,
        query: str,
        top_k: int = 100,
        first_stage: FirstStageName | None = None,
        filter: MetadataFilter | None = None,
        *,
        dense_vector: Sequence[float] | None = None,
        query_vectors: np.ndarray | None = None,
        k: Any = MISSING,
    ) -> list[Hit]: ...

    def rerank(
        self,
        query: str,
        ids: Sequence[str | int],
        top_k: int | None = None,
        *,
        highlight: bool = False,
        query_vectors: np.ndarray | None = None,
        k: Any = MISSING,
    ) -> list[Hit]: ...

    def explain(self, query: str, doc_id: str | int) -> Explanation: ...

    def close(self) -> None: ...


class BaseStore:
    """Shared behaviour of the engines. Subclasses set ``model``, ``schema``, ``engine`` and ``where``."""

    model: ColBERT
    schema: StoreSchema
    engine: Engine
    where: str
    dense: DenseEmbedder | None
    encode_batch_size: int

    def _init_common(self, dense: DenseEmbedder | None, encode_batch_size: int) -> None:
        if dense is not None and not isinstance(dense, DenseEmbedder):
            raise InvalidTypeError("dense must have embed_documents(texts) and embed_query(text), as LangChain's do.")
        self.dense = dense
        self.encode_batch_size = encode_batch_size
        self._bm25 = _bm25_model(self.schema.bm25_language) if self.schema.bm25 else None
        self._write_lock = threading.Lock()
        self._closed = False

    def _record_schema(self, schema: StoreSchema) -> None:
        """Persist ``schema`` where the engine keeps it, and adopt it."""
        raise NotImplementedError

    # ---- writes -------------------------------------------------------------------------------

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str | int] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        dense_vectors: Sequence[Sequence[float]] | None = None,
    ) -> list[str]:
        """Store texts and return their ids.

        Idempotent: a document whose id and text are already stored is not encoded again (only its
        metadata is updated when that changed); a changed text under a known id is re-encoded.
        """
        items = check_texts(texts)
        doc_ids = _optional_column(ids, len(items), "ids")
        metas = _optional_column(metadatas, len(items), "metadatas")
        vectors = _optional_column(dense_vectors, len(items), "dense_vectors")
        items_to_write = [
            _resolve(StoreDocument(text=text, id=doc_id, metadata=meta or {}))
            for text, doc_id, meta in zip(items, doc_ids, metas)
        ]
        self._warn_truncated(self._write(items_to_write, None if dense_vectors is None else list(vectors)))
        return [item.doc_id for item in items_to_write]

    def add_documents(
        self,
        documents: Iterable[DocumentLike],
        *,
        batch_size: int = 256,
        progress: bool = False,
        total: int | None = None,
        on_batch: Callable[[list[str]], None] | None = None,
    ) -> AddReport:
        """Stream documents into the store in batches; memory stays bounded by one batch.

        Each batch is written before the next is read; ``on_batch`` receives the ids of a batch once
        the engine has acknowledged it. Re-running over the same input skips what is already stored,
        which is how an interrupted indexing run resumes.
        """
        from tqdm.auto import tqdm  # half a second to import, which opening a store to search never needs

        check_positive("batch_size", batch_size)
        report = AddReport()
        bar = tqdm(total=total, unit="doc", desc="indexing", disable=not progress, dynamic_ncols=True)
        try:
            for batch in _batches(documents, batch_size):
                resolved = [_resolve(as_document(document)) for document in batch]
                report.merge(self._write(resolved, None))
                if on_batch is not None:
                    on_batch([item.doc_id for item in resolved])
                bar.update(len(resolved))
        finally:
            bar.close()
        self._warn_truncated(report)
        return report

    def _warn_truncated(self, report: AddReport) -> None:
        if report.truncated:
            logger.warning(
                "%d of %d documents exceed %d tokens and were truncated; split them into passages, or keep them "
                "whole with a larger document length: `--document-length N` on `edgecolbert index` / `serve`, or "
                "ColBERT.from_pretrained(..., document_length=N) (up to the backbone's position limit).",
                report.truncated,
                report.added + report.reencoded,
                self.model.document_length,
            )

    def delete(self, ids: Sequence[str | int]) -> None:
        """Remove documents by id; ids that are not stored are ignored."""
        self._check_open()
        point_ids = [point_id(doc_id) for doc_id in _doc_ids(ids)]
        if point_ids:
            with self._write_lock:
                self.engine.delete(point_ids)

    def _write(self, items: list[_Item], dense_vectors: list[Any] | None) -> AddReport:
        self._check_open()
        if self.schema.layout == "llama-index":
            raise InvalidInputError(
                f"{self.where} belongs to LlamaIndex: add nodes through LlamaIndex, then attach again to encode them."
            )
        unique = _dedupe(items, dense_vectors)
        known = self.engine.payloads([item.point_id for item in unique], [HASH_KEY, self.schema.metadata_key])
        report = AddReport()
        to_encode: list[int] = []
        for position, item in enumerate(unique):
            stored = known.get(item.point_id)
            if stored is None:
                report.added += 1
                to_encode.append(position)
            elif stored.get(HASH_KEY) != item.content_hash:
                report.reencoded += 1
                to_encode.append(position)
            elif self._stored_metadata(stored) != dict(item.document.metadata):
                report.metadata_updated += 1
                with self._write_lock:
                    self.engine.set_payload(item.point_id, {self.schema.metadata_key: dict(item.document.metadata)})
            else:
                report.unchanged += 1
        if to_encode:
            points = self._prepare([unique[i] for i in to_encode], _pick(dense_vectors, to_encode), report)
            with self._write_lock:
                self.engine.upsert(points)
        return report

    def add_muvera(
        self,
        params: FdeParams | None = None,
        *,
        batch_size: int = 256,
        progress: bool = False,
        on_batch: Callable[[list[PointId]], None] | None = None,
    ) -> int:
        """Give every stored document the MUVERA vector, from its stored token vectors; returns how many got one.

        Nothing is re-encoded. Resumable: an interrupted call leaves finished batches in place and the
        next call fills the rest (with the settings recorded by the first; ``params`` defaults to
        :class:`FdeParams`'s). ``on_batch`` receives the point ids of each batch once written.
        """
        self._check_open()
        check_positive("batch_size", batch_size)
        with self._write_lock:
            return add_muvera(self, params, batch_size=batch_size, progress=progress, on_batch=on_batch)

    def _stored_metadata(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return dict(payload.get(self.schema.metadata_key) or {})

    def _prepare(self, items: list[_Item], dense_vectors: list[Any] | None, report: AddReport) -> list[PreparedPoint]:
        texts = [item.document.text for item in items]

        def count_truncated(n: int) -> None:
            report.truncated += n

        colbert = self.model.encode_documents(texts, batch_size=self.encode_batch_size, on_truncation=count_truncated)
        stored = [self._storage_vectors(vectors) for vectors in colbert]
        dense = self._dense_documents(texts, dense_vectors)
        muvera = document_encodings(self.schema, stored)
        return [
            PreparedPoint(
                point_id=item.point_id,
                colbert=stored[index],
                payload=self._payload(item),
                bm25=self._bm25_document(item.document.text),
                dense=None if dense is None else dense[index],
                muvera=None if muvera is None else muvera[index],
            )
            for index, item in enumerate(items)
        ]

    def _payload(self, item: _Item) -> dict[str, Any]:
        return {
            ID_KEY: item.doc_id,
            self.schema.text_key: item.document.text,
            self.schema.metadata_key: dict(item.document.metadata),
            HASH_KEY: item.content_hash,
        }

    def _storage_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Zero-pad to the stored width: zeros change no dot product, and wider rows can be faster."""
        pad = self.schema.vector_size - vectors.shape[1]
        if pad == 0:
            return np.ascontiguousarray(vectors, dtype=np.float32)
        return np.pad(vectors.astype(np.float32, copy=False), ((0, 0), (0, pad)))

    def _bm25_document(self, text: str) -> SparseTerms | None:
        if self._bm25 is None:
            return None
        return _sparse_terms(self._bm25.embed_document(text))

    def _dense_documents(self, texts: list[str], supplied: list[Any] | None) -> list[list[float]] | None:
        if self.schema.dense_name is None:
            if supplied is not None and any(vector is not None for vector in supplied):
                raise InvalidInputError(f"{self.where} has no dense vector: create it with a dense model or size.")
            return None
        if supplied is None:
            if self.dense is None:
                return None
            supplied = list(self.dense.embed_documents(texts))
        return [self._check_dense(vector) for vector in supplied]

    def _check_dense(self, vector: Sequence[float] | None) -> list[float]:
        try:
            values = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"A dense vector is not a list of numbers: {exc}") from exc
        if values.ndim != 1 or values.shape[0] != self.schema.dense_size:
            raise InvalidInputError(
                f"Dense vectors for {self.where} have {self.schema.dense_size} values; got shape {values.shape}."
            )
        if not np.isfinite(values).all():
            raise InvalidInputError("A dense vector holds NaN or infinity.")
        return values.tolist()

    # ---- reads --------------------------------------------------------------------------------

    def get(self, ids: Sequence[str | int]) -> list[Hit]:
        """The stored documents with these ids, in the order asked; unknown ids are left out."""
        self._check_open()
        point_ids = [point_id(doc_id) for doc_id in _doc_ids(ids)]
        found = self.engine.payloads(point_ids, None)
        return [self._hit(StoredPoint(pid, found[pid])) for pid in dict.fromkeys(point_ids) if pid in found]

    def count(self) -> int:
        """How many documents the store holds."""
        self._check_open()
        return self.engine.count()

    def search(
        self,
        query: str,
        top_k: int = 10,
        prefetch_k: int = 100,
        first_stage: FirstStageName | None = None,
        filter: MetadataFilter | None = None,
        *,
        dense_vector: Sequence[float] | None = None,
        highlight: bool = False,
        k: Any = MISSING,
    ) -> list[Hit]:
        """Top ``top_k`` documents for ``query`` (``k=`` is the deprecated name of ``top_k``).

        The first stage (BM25, the dense vector, or both fused with RRF; BM25 by default when the
        store has it; ``"muvera"`` and ``"hybrid-muvera"``: the MUVERA vector alone or fused with BM25)
        proposes ``prefetch_k`` candidates that pass ``filter``; MaxSim over their stored token vectors
        orders them. Equal scores are ordered by point id at every cut, so the
        same call on an unchanged store always returns the same hits. ``highlight=True`` adds each
        returned hit's ``highlights`` (:func:`~edgecolbert.scoring.explain.highlight_texts` over the
        returned texts only: the stored vectors have no character spans, so each is encoded once more).
        """
        top_k = renamed_keyword("k", "top_k", k, top_k, 10)
        self._check_query(query)
        check_positive("top_k", top_k)
        check_positive("prefetch_k", prefetch_k)
        encoded = self.model.encode_query(query)
        colbert = self._storage_vectors(encoded)
        stages = self._first_stages(query, first_stage, dense_vector, encoded)
        conditions = parse_filter(filter)
        prefix = self.schema.metadata_key
        candidates = first_stage_top(self.engine, stages, prefetch_k, conditions, prefix, with_payload=False)
        if not candidates:
            return []
        plan = QueryPlan(
            FirstStage(COLBERT, colbert),
            min(top_k, len(candidates)),
            conditions=conditions,
            metadata_prefix=prefix,
            point_ids=[point.point_id for point in candidates],
        )
        hits = [self._hit(point, len(colbert)) for point in exact_top(self.engine, plan)]
        return self._highlighted(query, encoded, hits, highlight)

    def _highlighted(self, query: str, query_vectors: np.ndarray, hits: list[Hit], highlight: bool) -> list[Hit]:
        return with_highlights(self.model, query, hits, query_vectors=query_vectors) if highlight else hits

    def search_first_stage(
        self,
        query: str,
        top_k: int = 100,
        first_stage: FirstStageName | None = None,
        filter: MetadataFilter | None = None,
        *,
        dense_vector: Sequence[float] | None = None,
        query_vectors: np.ndarray | None = None,
        k: Any = MISSING,
    ) -> list[Hit]:
        """The first stage alone: the ``top_k`` candidates :meth:`search` would rerank, in first-stage order.

        Scores are the first stage's own (BM25, the dense or MUVERA similarity, or the RRF score of the
        hybrids); only the MUVERA stages encode the query with the late-interaction model, or use
        ``query_vectors`` (``store.model.encode_query(query)``) when given, so a caller that reranks the
        candidates next (:meth:`rerank` takes them too) encodes the query once. Comparing
        this ranking with :meth:`search` over the same candidates shows what the MaxSim rerank adds.
        """
        top_k = renamed_keyword("k", "top_k", k, top_k, 100)
        self._check_query(query)
        check_positive("top_k", top_k)
        stages = self._first_stages(query, first_stage, dense_vector, self._given_query_vectors(query_vectors))
        conditions, prefix = parse_filter(filter), self.schema.metadata_key
        points = first_stage_top(self.engine, stages, top_k, conditions, prefix, with_payload=len(stages) == 1)
        if len(stages) > 1:
            points = with_payloads(self.engine, points)
        return [self._hit(point) for point in points]

    def _check_query(self, query: str) -> None:
        self._check_open()
        check_query(query)
        check_utf8(query, "The query")

    def _given_query_vectors(self, query_vectors: np.ndarray | None) -> np.ndarray | None:
        return None if query_vectors is None else check_query_vectors(query_vectors, self.model.dim)

    def rerank(
        self,
        query: str,
        ids: Sequence[str | int],
        top_k: int | None = None,
        *,
        highlight: bool = False,
        query_vectors: np.ndarray | None = None,
        k: Any = MISSING,
    ) -> list[Hit]:
        """Order stored documents for ``query`` by MaxSim over their stored vectors (no re-encoding).

        ``highlight=True`` adds each returned hit's ``highlights``, as in :meth:`search`. The query is
        encoded once, or not at all when ``query_vectors`` (``store.model.encode_query(query)``, held
        by a caller that encoded it already) is given. Raises :class:`DocumentNotFoundError` naming
        the ids that are not stored.
        """
        top_k = renamed_keyword("k", "top_k", k, top_k, None)
        self._check_query(query)
        if top_k is not None:
            check_positive("top_k", top_k)
        given = self._given_query_vectors(query_vectors)
        doc_ids = list(dict.fromkeys(_doc_ids(ids)))
        if not doc_ids:
            return []
        point_ids = [point_id(doc_id) for doc_id in doc_ids]
        encoded = self.model.encode_query(query) if given is None else given
        colbert = self._storage_vectors(encoded)
        plan = QueryPlan(FirstStage(COLBERT, colbert), len(point_ids), point_ids=point_ids)
        points = exact_top(self.engine, plan)
        if len(points) < len(point_ids):
            returned = {point.point_id for point in points}
            missing = [doc_id for doc_id, pid in zip(doc_ids, point_ids) if pid not in returned]
            shown = ", ".join(repr(doc_id) for doc_id in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DocumentNotFoundError(f"{self.where} holds no document with id {shown}{more}; add it first.")
        hits = [self._hit(point, len(colbert)) for point in points]
        return self._highlighted(query, encoded, hits if top_k is None else hits[:top_k], highlight)

    def explain(self, query: str, doc_id: str | int) -> Explanation:
        """Why the stored document ``doc_id`` scores what it does for ``query``: see
        :func:`~edgecolbert.scoring.explain.explain`.

        Reads the stored text and encodes it once, unpooled, with its token spans (stored vectors
        have none, and a pooled store's vectors average several tokens). The explanation's score
        is therefore that of the unpooled float32 vectors and can differ slightly from the score
        :meth:`search` gives from the stored ones. Raises :class:`DocumentNotFoundError` for an
        unknown id.
        """
        self._check_query(query)
        return explain(self.model, query, self.stored_text(doc_id))

    def stored_text(self, doc_id: str | int) -> str:
        """The text stored for ``doc_id``; :class:`DocumentNotFoundError` when there is none."""
        found = self.get([doc_id])
        if not found:
            raise DocumentNotFoundError(f"{self.where} holds no document with id {str(doc_id)!r}; add it first.")
        return found[0].text

    def _first_stages(
        self,
        query: str,
        first_stage: FirstStageName | None,
        dense_vector: Sequence[float] | None,
        query_vectors: np.ndarray | None = None,
    ) -> list[FirstStage]:
        if first_stage is None:
            first_stage = "bm25" if self.schema.bm25 else "dense"
        check_first_stage(first_stage)
        stages = []
        if first_stage in ("bm25", "hybrid", "hybrid-muvera"):
            if self._bm25 is None:
                raise InvalidInputError(f"{self.where} has no BM25 vector; use first_stage='dense'.")
            stages.append(FirstStage(BM25, _sparse_terms(self._bm25.embed_query(query))))
        if first_stage in ("dense", "hybrid"):
            stages.append(FirstStage(self._dense_name(), self._dense_query(query, dense_vector)))
        if first_stage in MUVERA_STAGES:
            vectors = self.model.encode_query(query) if query_vectors is None else query_vectors
            stage = query_stage(self.schema, self._storage_vectors(vectors), self.where)
            stages.append(replace(stage, share=HYBRID_MUVERA_SHARE) if first_stage == "hybrid-muvera" else stage)
        return stages

    def _dense_name(self) -> str:
        if self.schema.dense_name is None:
            raise InvalidInputError(f"{self.where} has no dense vector; use first_stage='bm25'.")
        return self.schema.dense_name

    def _dense_query(self, query: str, dense_vector: Sequence[float] | None) -> list[float]:
        if dense_vector is None:
            if self.dense is None:
                raise InvalidInputError(
                    "A dense first stage needs the query's dense vector: pass dense_vector= or open the store "
                    "with dense=<model with embed_query>."
                )
            dense_vector = self.dense.embed_query(query)
        return self._check_dense(dense_vector)

    def _hit(self, point: StoredPoint, n_query: int | None = None) -> Hit:
        """The stored document as a result; ``n_query`` (the query's vector count) where the score is MaxSim."""
        text, metadata = payload_document(point.payload, self.schema)
        # LlamaIndex payloads carry their own 'doc_id' (the source document), not the node's id.
        doc_id = None if self.schema.layout == "llama-index" else point.payload.get(ID_KEY)
        score = float(point.score)
        return Hit(
            id=str(doc_id) if doc_id is not None else str(point.point_id),
            score=score,
            normalized_score=None if n_query is None else score / n_query,
            text=text,
            metadata=metadata,
        )

    # ---- lifecycle and async twins ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"{self.where} is closed.")

    def close(self) -> None:
        """Flush and release the engine; further calls raise."""
        if not self._closed:
            self._closed = True
            self.engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def aadd(
        self,
        texts: Sequence[str],
        ids: Sequence[str | int] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        dense_vectors: Sequence[Sequence[float]] | None = None,
    ) -> list[str]:
        return await asyncio.to_thread(self.add, texts, ids, metadatas, dense_vectors=dense_vectors)

    async def aadd_documents(
        self,
        documents: Iterable[DocumentLike],
        *,
        batch_size: int = 256,
        progress: bool = False,
        total: int | None = None,
        on_batch: Callable[[list[str]], None] | None = None,
    ) -> AddReport:
        return await asyncio.to_thread(
            self.add_documents, documents, batch_size=batch_size, progress=progress, total=total, on_batch=on_batch
        )

    async def adelete(self, ids: Sequence[str | int]) -> None:
        await asyncio.to_thread(self.delete, ids)

    async def aget(self, ids: Sequence[str | int]) -> list[Hit]:
        return await asyncio.to_thread(self.get, ids)

    async def acount(self) -> int:
        return await asyncio.to_thread(self.count)

    async def asearch(
        self,
        query: str,
        top_k: int = 10,
        prefetch_k: int = 100,
        first_stage: FirstStageName | None = None,
        filter: MetadataFilter | None = None,
        *,
        dense_vector: Sequence[float] | None = None,
        highlight: bool = False,
        k: Any = MISSING,
    ) -> list[Hit]:
        return await asyncio.to_thread(
            self.search,
            query,
            top_k,
            prefetch_k,
            first_stage,
            filter,
            dense_vector=dense_vector,
            highlight=highlight,
            k=k,
        )

    async def asearch_first_stage(
        self,
        query: str,
        top_k: int = 100,
        first_stage: FirstStageName | None = None,
        filter: MetadataFilter | None = None,
        *,
        dense_vector: Sequence[float] | None = None,
        query_vectors: np.ndarray | None = None,
        k: Any = MISSING,
    ) -> list[Hit]:
        return await asyncio.to_thread(
            self.search_first_stage,
            query,
            top_k,
            first_stage,
            filter,
            dense_vector=dense_vector,
            query_vectors=query_vectors,
            k=k,
        )

    async def arerank(
        self,
        query: str,
        ids: Sequence[str | int],
        top_k: int | None = None,
        *,
        highlight: bool = False,
        query_vectors: np.ndarray | None = None,
        k: Any = MISSING,
    ) -> list[Hit]:
        return await asyncio.to_thread(
            self.rerank, query, ids, top_k, highlight=highlight, query_vectors=query_vectors, k=k
        )

    async def aexplain(self, query: str, doc_id: str | int) -> Explanation:
        return await asyncio.to_thread(self.explain, query, doc_id)

    async def astored_text(self, doc_id: str | int) -> str:
        return await asyncio.to_thread(self.stored_text, doc_id)


def payload_document(payload: Mapping[str, Any], schema: StoreSchema) -> tuple[str, dict[str, Any]]:
    """Text and metadata of a stored point, in our layout or the one of the tool that made the collection."""
    if schema.layout == "llama-index":
        return _llama_index_document(payload, schema)
    text = payload.get(schema.text_key)
    metadata = payload.get(schema.metadata_key)
    return (text if isinstance(text, str) else ""), (dict(metadata) if isinstance(metadata, Mapping) else {})


_LLAMA_INDEX_INTERNAL = ("_node_content", "_node_type", "doc_id", "document_id", "ref_doc_id")


def _llama_index_document(payload: Mapping[str, Any], schema: StoreSchema) -> tuple[str, dict[str, Any]]:
    text = payload.get(schema.text_key)
    if not isinstance(text, str):
        try:
            node = json.loads(payload.get("_node_content") or "{}")
        except (TypeError, ValueError):
            node = {}
        text = node.get("text", "") if isinstance(node, dict) else ""
    metadata = {
        key: value
        for key, value in payload.items()
        if key not in _LLAMA_INDEX_INTERNAL and key not in (schema.text_key, HASH_KEY, ID_KEY)
    }
    return text, metadata


def _bm25_model(language: str) -> Any:
    from qdrant_edge import Bm25, Bm25Config

    try:
        return Bm25(Bm25Config(language=language))
    except ValueError as exc:
        raise InvalidInputError(f"BM25 does not support language {language!r}: {exc}") from exc


@dataclass(frozen=True)
class _Item:
    """A checked document with what a write needs of it, each derived once."""

    doc_id: str
    point_id: PointId
    content_hash: str
    document: StoreDocument


def _resolve(document: StoreDocument) -> _Item:
    if not isinstance(document.text, str):
        raise InvalidTypeError(f"Document text must be a string, got {type(document.text).__name__}.")
    if not isinstance(document.metadata, Mapping):
        raise InvalidTypeError(f"Document metadata must be a mapping, got {type(document.metadata).__name__}.")
    doc_id = content_id(document.text) if document.id is None else _check_id(document.id)
    check_utf8(document.text, f"The text of document {doc_id!r}")
    _check_json(document, doc_id)
    return _Item(doc_id, point_id(doc_id), content_hash(document.text), document)


def _sparse_terms(sparse: Any) -> SparseTerms:
    return SparseTerms(list(sparse.indices), list(sparse.values))


def _check_id(doc_id: object) -> str:
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise InvalidTypeError(f"Document ids are strings or integers, got {type(doc_id).__name__}.")
    text = str(doc_id)
    if not text.strip():
        raise InvalidInputError("A document id is empty.")
    check_utf8(text, "A document id")
    return text


def check_utf8(text: str, what: str) -> None:
    """Refuse lone surrogates (what decoding with ``surrogateescape`` leaves): no engine can store them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} holds a lone surrogate (U+{ord(text[exc.start]):04X} at {exc.start}), which is not valid "
            "Unicode; decode the source with errors='replace' or fix its encoding."
        ) from exc


def _doc_ids(ids: Sequence[str | int]) -> list[str]:
    if isinstance(ids, (str, int)):
        raise InvalidTypeError("Expected a list of ids, got a single id: wrap it in a list.")
    return [_check_id(doc_id) for doc_id in ids]


def _optional_column(values: Sequence[Any] | None, length: int, name: str) -> list[Any]:
    if values is None:
        return [None] * length
    if isinstance(values, (str, bytes)):
        raise InvalidTypeError(f"{name} must be a list, not a string.")
    column = list(values)
    if len(column) != length:
        raise InvalidInputError(f"{name} has {len(column)} entries for {length} texts.")
    return column


def _dedupe(items: list[_Item], dense_vectors: list[Any] | None) -> list[_Item]:
    """Drop exact repeats of one id in a batch; two different documents under one id are an error."""
    seen: dict[str, _Item] = {}
    for item in items:
        previous = seen.setdefault(item.doc_id, item)
        if previous.content_hash != item.content_hash or dict(previous.document.metadata) != dict(
            item.document.metadata
        ):
            raise InvalidInputError(f"Id {item.doc_id!r} appears twice in one batch with different content.")
    if dense_vectors is not None and len(seen) != len(items):
        raise InvalidInputError("Ids repeat within a batch that supplies dense vectors; pass each document once.")
    return list(seen.values())


def _pick(values: list[Any] | None, positions: list[int]) -> list[Any] | None:
    if values is None:
        return None
    return [values[i] for i in positions]


# Qdrant Edge accepts a payload nested ~123 levels deep, then cannot read its own write-ahead log back
# (serde's recursion limit), so the store no longer opens. 32 levels leaves a wide margin.
MAX_METADATA_DEPTH = 32
# Qdrant Edge reads back 50 MB payloads; a Qdrant server refuses requests over 32 MB by default.
MAX_PAYLOAD_BYTES = 16 * 2**20
# Integers outside 64 bits come back from the engine as floats, so the stored value would differ.
_INT_RANGE = (-(2**63), 2**64 - 1)


def _check_json(document: StoreDocument, doc_id: str) -> None:
    """Refuse a payload the engines cannot store and read back unchanged, before anything is written."""
    problem = _json_problem(document.metadata, "metadata", 1)
    if problem is None:
        try:
            size = len(json.dumps(dict(document.metadata), allow_nan=False, ensure_ascii=False).encode("utf-8"))
        except (TypeError, ValueError) as exc:
            problem = str(exc)
        else:
            size += len(document.text.encode("utf-8"))
            if size > MAX_PAYLOAD_BYTES:
                problem = f"text and metadata take {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
    if problem is not None:
        raise InvalidInputError(
            f"Metadata of document {doc_id!r} is not plain JSON the store can keep: {problem}. Use string keys, "
            f"strings, finite numbers, 64-bit integers, booleans, None, lists and dicts, at most "
            f"{MAX_METADATA_DEPTH} levels deep."
        )


def _json_problem(value: Any, where: str, depth: int) -> str | None:
    """What makes ``value`` unstorable, or None. Stops at the depth limit, so cycles end too."""
    if isinstance(value, (Mapping, list, tuple)):
        if depth > MAX_METADATA_DEPTH:
            return f"{where} is nested more than {MAX_METADATA_DEPTH} levels deep"
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            if isinstance(value, Mapping) and not isinstance(key, str):
                return f"{where} has a key of type {type(key).__name__} ({key!r}); keys must be strings"
            problem = _json_problem(item, f"{where}[{key!r}]", depth + 1)
            if problem is not None:
                return problem
        return None
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        low, high = _INT_RANGE
        return None if low <= value <= high else f"{where} is an integer outside 64 bits ({value})"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value}, not a finite number"
    return f"{where} is a {type(value).__name__}, not a JSON value"


def check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
