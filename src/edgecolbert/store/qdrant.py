"""The client-server engine: a Qdrant server, cluster or cloud through qdrant-client (local mode too).

The schema is kept in the collection's own metadata, so any client that opens the collection
finds the model and layout it was built with.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from tqdm.auto import tqdm

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import InvalidInputError, StoreError, require
from edgecolbert.store.base import BaseStore, DenseEmbedder, check_positive, payload_document
from edgecolbert.store.defaults import API_KEY_ENV_VAR, URL_ENV_VAR
from edgecolbert.store.engine import (
    PointId,
    PreparedPoint,
    QueryPlan,
    SparseTerms,
    StoredPoint,
    named_vector,
    normal_id,
)
from edgecolbert.store.filters import Condition, payload_key
from edgecolbert.store.muvera_stage import MuveraOption, fde_size, stored_params
from edgecolbert.store.options import StoreOptions, new_schema, resolve_store_model
from edgecolbert.store.retry import RetryPolicy, call_with_retries
from edgecolbert.store.schema import BM25, COLBERT, MUVERA, Datatype, StoreSchema, load_schema

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

METADATA_FIELD = "edgecolbert"
Layout = Literal["langchain", "llama-index"]
T = TypeVar("T")


def _models() -> Any:
    return require("qdrant_client.models", "qdrant", "QdrantStore", instead="use the embedded EdgeStore")


def connect(
    client: QdrantClient | None = None,
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: str | os.PathLike[str] | None = None,
    timeout: int | None = None,
) -> QdrantClient:
    """A client from the arguments, else from ``QDRANT_URL`` / ``QDRANT_API_KEY``."""
    _models()
    from qdrant_client import QdrantClient

    if client is not None:
        return client
    url = url or os.environ.get(URL_ENV_VAR)
    if url:
        return QdrantClient(url=url, api_key=api_key or os.environ.get(API_KEY_ENV_VAR), timeout=timeout)
    if path is not None:
        return QdrantClient(path=os.fspath(path))
    raise InvalidInputError(f"Give client=, url= (or set {URL_ENV_VAR}) or path= to reach Qdrant.")


class QdrantStore(BaseStore):
    """Document multivectors in a Qdrant collection, same schema and results as :class:`EdgeStore`.

    Creation options for scale-out (``shard_number``, ``replication_factor``, ``on_disk``,
    ``quantization``) go to ``create_collection`` unchanged; ``quantization`` also takes a
    qdrant-client quantization config.
    """

    def __init__(
        self,
        collection: str = "edgecolbert",
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        client: QdrantClient | None = None,
        url: str | None = None,
        api_key: str | None = None,
        path: str | os.PathLike[str] | None = None,
        timeout: int | None = None,
        datatype: Datatype | None = None,
        quantization: Any = None,
        vector_size: int | None = None,
        dense: DenseEmbedder | None = None,
        dense_size: int | None = None,
        bm25: bool = True,
        bm25_language: str = "english",
        muvera: MuveraOption = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        on_disk: bool | None = None,
        encode_batch_size: int = 16,
        retries: int = 3,
        retry_backoff: float = 0.5,
        retry_deadline: float = 60.0,
        **model_kwargs: Any,
    ) -> None:
        policy = RetryPolicy.build(retries=retries, backoff=retry_backoff, deadline=retry_deadline)
        self.client = connect(client, url=url, api_key=api_key, path=path, timeout=timeout)
        self.collection = collection
        self.where = f"Qdrant collection '{collection}'"
        calls = _server_calls(self.client, url, api_key, policy)
        native_quantization = None if quantization in (None, "int8") else quantization
        options = StoreOptions(
            datatype=datatype,
            quantization=None if native_quantization is not None else quantization,
            vector_size=vector_size,
            dense_size=dense_size,
            bm25=bm25,
            bm25_language=bm25_language,
            muvera=muvera,
        )
        existing = calls("reading the collection", lambda: _read_schema(self.client, collection))
        self.model, self.schema = resolve_store_model(existing, model, options, dense, self.where, model_kwargs)
        if existing is None:
            calls(
                "creating the collection",
                lambda: _create_collection(
                    self.client,
                    collection,
                    self.schema,
                    quantization=native_quantization,
                    shard_number=shard_number,
                    replication_factor=replication_factor,
                    on_disk=on_disk,
                ),
            )
        self.calls = calls
        self.engine = QdrantEngine(self.client, collection, self.schema, calls)
        self._init_common(dense, encode_batch_size)

    @classmethod
    def attach(
        cls,
        collection: str,
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        client: QdrantClient | None = None,
        url: str | None = None,
        api_key: str | None = None,
        path: str | os.PathLike[str] | None = None,
        dense: DenseEmbedder | None = None,
        layout: Layout | None = None,
        datatype: Datatype = "float16",
        vector_size: int | None = None,
        batch_size: int = 32,
        progress: bool = True,
        encode_batch_size: int = 16,
        retries: int = 3,
        retry_backoff: float = 0.5,
        retry_deadline: float = 60.0,
        **model_kwargs: Any,
    ) -> QdrantStore:
        """Add a ``colbert`` vector to a collection made by langchain-qdrant or LlamaIndex and fill it.

        The text comes from the points' payload (``page_content``, or LlamaIndex's ``text`` /
        ``_node_content``). Filling is resumable: only points without a ``colbert`` vector are
        encoded, so calling ``attach`` again after an interruption finishes the rest. Searches then
        use the collection's own dense vector as the first stage.
        """
        if layout not in (None, "langchain", "llama-index"):
            raise InvalidInputError(f"layout is None (detect it), 'langchain' or 'llama-index'; got {layout!r}.")
        check_positive("batch_size", batch_size)
        policy = RetryPolicy.build(retries=retries, backoff=retry_backoff, deadline=retry_deadline)
        qdrant = connect(client, url=url, api_key=api_key, path=path)
        calls = _server_calls(qdrant, url, api_key, policy)
        if not calls("reading the collection", lambda: qdrant.collection_exists(collection)):
            raise StoreError(
                f"Qdrant collection '{collection}' does not exist; attach() adds a colbert vector to a collection "
                "that langchain-qdrant or LlamaIndex made. Create a new one with QdrantStore() instead."
            )
        # A foreign collection has no schema yet; one that was attached before (or made here) has one.
        schema = calls("reading the collection", lambda: _stored_schema(qdrant, collection))
        if schema is None:
            encoder = model if isinstance(model, ColBERT) else ColBERT.from_pretrained(model, **model_kwargs)
            new = calls(
                "inspecting the collection",
                lambda: _attach_schema(qdrant, collection, encoder, layout, datatype, vector_size, dense),
            )
            calls("inspecting the collection", lambda: _check_no_foreign_colbert(qdrant, collection))
            # The schema goes in first: if the process dies before the vector exists, the next attach
            # knows the collection is ours and creates the vector, instead of taking it for a foreign one.
            calls(
                "recording the schema",
                lambda: qdrant.update_collection(collection, metadata={METADATA_FIELD: new.model_dump()}),
            )
            schema, model = new, encoder
        recorded = schema
        calls("adding the colbert vector", lambda: _ensure_colbert_vector(qdrant, collection, recorded))
        store = cls(
            collection,
            model,
            client=qdrant,
            dense=dense,
            encode_batch_size=encode_batch_size,
            retries=retries,
            retry_backoff=retry_backoff,
            retry_deadline=retry_deadline,
            **model_kwargs,
        )
        store.backfill(batch_size=batch_size, progress=progress)
        return store

    def backfill(self, *, batch_size: int = 32, progress: bool = True) -> int:
        """Encode every point that has no ``colbert`` vector yet; returns how many were encoded."""
        self._check_open()
        check_positive("batch_size", batch_size)
        return _backfill(self, batch_size=batch_size, progress=progress)

    def _record_schema(self, schema: StoreSchema) -> None:
        self.calls(
            "recording the schema",
            lambda: self.client.update_collection(self.collection, metadata={METADATA_FIELD: schema.model_dump()}),
        )
        self.schema = schema

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection!r}, model={self.schema.model!r})"


class ServerCalls:
    """Runs the store's idempotent server calls under one retry policy, naming the server in every error.

    qdrant-client's local mode keeps points in numpy arrays that a write resizes while a concurrent
    search reads them, so with a local client the calls are serialised; a server needs no such lock.
    """

    def __init__(self, server: str, policy: RetryPolicy, secrets: tuple[str, ...] = (), *, local: bool) -> None:
        self.server = server
        self.policy = policy
        self._secrets = secrets
        self._lock: AbstractContextManager[Any] = threading.Lock() if local else nullcontext()

    def __call__(self, what: str, call: Callable[[], T]) -> T:
        with self._lock:
            return call_with_retries(call, what=what, where=self.server, policy=self.policy, secrets=self._secrets)


def _server_calls(client: Any, url: str | None, api_key: str | None, policy: RetryPolicy) -> ServerCalls:
    server = _client_url(client) or url or os.environ.get(URL_ENV_VAR) or "the given client"
    secrets = tuple(key for key in (api_key, os.environ.get(API_KEY_ENV_VAR)) if key)
    return ServerCalls(server, policy, secrets, local=_client_url(client) is None)


def _client_url(client: Any) -> str | None:
    """The REST address a remote client talks to; None in local mode."""
    return getattr(getattr(client, "_client", None), "rest_uri", None)


def _read_schema(client: QdrantClient, collection: str) -> StoreSchema | None:
    if not client.collection_exists(collection):
        return None
    schema = _stored_schema(client, collection)
    if schema is None:
        raise StoreError(
            f"Qdrant collection '{collection}' was not made by edgecolbert; use QdrantStore.attach() to add a "
            "colbert vector to it, or choose another collection name."
        )
    return schema


def _stored_schema(client: QdrantClient, collection: str) -> StoreSchema | None:
    """The schema in an existing collection's metadata; None when edgecolbert never recorded one."""
    metadata = client.get_collection(collection).config.metadata or {}
    stored = metadata.get(METADATA_FIELD)
    if stored is None:
        return None
    try:
        return load_schema(stored)
    except ValueError as exc:
        raise StoreError(
            f"Qdrant collection '{collection}' has an edgecolbert record this version cannot use ({exc})."
        ) from exc


def _create_collection(
    client: QdrantClient,
    collection: str,
    schema: StoreSchema,
    *,
    quantization: Any,
    shard_number: int | None,
    replication_factor: int | None,
    on_disk: bool | None,
) -> None:
    # Retried as a whole: after an answer lost on the way back, the collection already exists.
    if client.collection_exists(collection):
        return
    models = _models()
    vectors = {COLBERT: _colbert_params(schema, on_disk=on_disk)}
    if schema.dense_name is not None and schema.dense_size is not None:
        vectors[schema.dense_name] = models.VectorParams(
            size=schema.dense_size, distance=models.Distance.COSINE, on_disk=on_disk
        )
    muvera = stored_params(schema)
    if muvera is not None:
        # Encodings' inner products approximate MaxSim, so the index ranks by dot product.
        vectors[MUVERA] = models.VectorParams(
            size=fde_size(muvera, schema), distance=models.Distance.DOT, on_disk=on_disk
        )
    if quantization is None and schema.quantization == "int8":
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
    client.create_collection(
        collection,
        vectors_config=vectors,
        sparse_vectors_config={BM25: models.SparseVectorParams(modifier=models.Modifier.IDF)} if schema.bm25 else None,
        shard_number=shard_number,
        replication_factor=replication_factor,
        quantization_config=quantization,
        metadata={METADATA_FIELD: schema.model_dump()},
    )


def _colbert_params(schema: StoreSchema, *, on_disk: bool | None) -> Any:
    models = _models()
    return models.VectorParams(
        size=schema.vector_size,
        distance=models.Distance.DOT,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        # m=0: the multivector only rescores prefetched candidates, so no graph is built.
        hnsw_config=models.HnswConfigDiff(m=0),
        datatype=models.Datatype.FLOAT16 if schema.datatype == "float16" else models.Datatype.FLOAT32,
        on_disk=on_disk,
    )


def _attach_schema(
    client: QdrantClient,
    collection: str,
    encoder: ColBERT,
    layout: Layout | None,
    datatype: Datatype,
    vector_size: int | None,
    dense: DenseEmbedder | None,
) -> StoreSchema:
    layout = layout or _detect_layout(client, collection)
    dense_name, dense_size = _dense_vector(client, collection)
    options = StoreOptions(datatype=datatype, vector_size=vector_size, dense_size=dense_size, bm25=False)
    schema = new_schema(encoder, options, dense, dense_name=dense_name)
    keys = {"text_key": "page_content", "metadata_key": "metadata"} if layout == "langchain" else {"metadata_key": ""}
    return schema.model_copy(update={"layout": layout, **keys})


def _detect_layout(client: QdrantClient, collection: str) -> Layout:
    points, _ = client.scroll(collection, limit=1, with_payload=True, with_vectors=False)
    if not points:
        raise StoreError(f"Qdrant collection '{collection}' is empty: nothing to attach to yet.")
    payload = points[0].payload or {}
    if "page_content" in payload:
        return "langchain"
    if "_node_content" in payload:
        return "llama-index"
    raise StoreError(
        f"Qdrant collection '{collection}' has neither langchain-qdrant's 'page_content' nor LlamaIndex's "
        f"'_node_content' in its payload (keys: {sorted(payload)}); pass layout= to say which it is."
    )


def _dense_vector(client: QdrantClient, collection: str) -> tuple[str | None, int | None]:
    """The collection's own single-vector dense field, the natural first stage."""
    vectors = client.get_collection(collection).config.params.vectors
    if vectors is None:
        return None, None
    named = vectors if isinstance(vectors, dict) else {"": vectors}
    for name, params in named.items():
        if name != COLBERT and params.multivector_config is None:
            return name, params.size
    return None, None


def _check_no_foreign_colbert(client: QdrantClient, collection: str) -> None:
    if COLBERT in _vector_names(client, collection):
        raise StoreError(
            f"Qdrant collection '{collection}' already has a '{COLBERT}' vector that edgecolbert did not make."
        )


def _vector_names(client: QdrantClient, collection: str) -> set[str]:
    vectors = client.get_collection(collection).config.params.vectors
    return set(vectors) if isinstance(vectors, dict) else {""}


def _ensure_colbert_vector(client: QdrantClient, collection: str, schema: StoreSchema) -> None:
    if COLBERT in _vector_names(client, collection):
        return
    models = _models()
    config = models.DenseVectorConfig(
        size=schema.vector_size,
        distance=models.Distance.DOT,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        datatype=models.Datatype.FLOAT16 if schema.datatype == "float16" else models.Datatype.FLOAT32,
    )
    client.create_vector_name(collection, COLBERT, models.DenseVectorNameConfig(dense=config))
    # The vector-creation call takes no graph settings; switch the graph off before any point is filled.
    client.update_collection(
        collection, vectors_config={COLBERT: models.VectorParamsDiff(hnsw_config=models.HnswConfigDiff(m=0))}
    )


def _backfill(store: QdrantStore, *, batch_size: int, progress: bool) -> int:
    models = _models()
    client, collection = store.client, store.collection
    calls = store.calls
    missing = models.Filter(must_not=[models.HasVectorCondition(has_vector=COLBERT)])
    total = calls("count", lambda: client.count(collection, count_filter=missing, exact=True)).count
    done = empty = 0
    with tqdm(total=total, unit="doc", desc="encoding", disable=not progress, dynamic_ncols=True) as bar:
        while True:
            points, _ = calls(
                "scroll", lambda: client.scroll(collection, scroll_filter=missing, limit=batch_size, with_payload=True)
            )
            if not points:
                _warn_empty(empty, done, store.schema)
                return done
            texts = [payload_document(point.payload or {}, store.schema)[0] for point in points]
            empty += sum(1 for text in texts if not text.strip())
            vectors = store.model.encode_documents(texts, batch_size=store.encode_batch_size)
            filled = [
                models.PointVectors(id=point.id, vector={COLBERT: store._storage_vectors(vectors[i]).tolist()})
                for i, point in enumerate(points)
            ]
            # Setting a point's vector again writes the same vector: safe to repeat.
            calls("update_vectors", partial(client.update_vectors, collection, filled, wait=True))
            done += len(points)
            bar.update(len(points))


def _warn_empty(empty: int, done: int, schema: StoreSchema) -> None:
    if empty:
        where = "'text' or '_node_content'" if schema.layout == "llama-index" else repr(schema.text_key)
        logger.warning(
            "%d of %d points had no text under %s; their vectors encode an empty document. "
            "If the collection's layout is not %s, attach it with the right layout=.",
            empty,
            done,
            where,
            schema.layout,
        )


class QdrantEngine:
    """The engine primitives through qdrant-client."""

    def __init__(
        self, client: QdrantClient, collection: str, schema: StoreSchema, calls: ServerCalls | None = None
    ) -> None:
        self.client = client
        self.collection = collection
        self._schema = schema
        self._models = _models()
        url = _client_url(client)
        self._calls = calls or ServerCalls(url or "the given client", RetryPolicy(), local=url is None)

    def payloads(self, point_ids: Sequence[PointId], keys: Sequence[str] | None) -> dict[PointId, dict[str, Any]]:
        if not point_ids:
            return {}
        records = self._calls(
            "retrieve",
            lambda: self.client.retrieve(
                self.collection, list(point_ids), with_payload=list(keys) if keys else True, with_vectors=False
            ),
        )
        return {normal_id(record.id): dict(record.payload or {}) for record in records}

    def upsert(self, points: Sequence[PreparedPoint]) -> None:
        structs = [self._point(point) for point in points]
        # Upserts are keyed by point id, so repeating one after a lost answer writes the same points again.
        self._calls("upsert", lambda: self.client.upsert(self.collection, structs, wait=True))

    def _point(self, point: PreparedPoint) -> Any:
        models = self._models
        vectors: dict[str, Any] = {COLBERT: point.colbert.tolist()}
        if point.bm25 is not None:
            vectors[BM25] = models.SparseVector(indices=point.bm25.indices, values=point.bm25.values)
        if point.dense is not None and self._schema.dense_name is not None:
            vectors[self._schema.dense_name] = point.dense
        if point.muvera is not None:
            vectors[MUVERA] = point.muvera.tolist()
        return models.PointStruct(id=point.point_id, vector=vectors, payload=point.payload)

    def set_payload(self, point_id: PointId, payload: dict[str, Any]) -> None:
        self._calls(
            "set_payload", lambda: self.client.set_payload(self.collection, payload, points=[point_id], wait=True)
        )

    def delete(self, point_ids: Sequence[PointId]) -> None:
        selector = self._models.PointIdsList(points=list(point_ids))
        self._calls("delete", lambda: self.client.delete(self.collection, points_selector=selector, wait=True))

    def count(self) -> int:
        return int(self._calls("count", lambda: self.client.count(self.collection, exact=True)).count)

    def query(self, plan: QueryPlan) -> list[StoredPoint]:
        response = self._calls(
            "query",
            lambda: self.client.query_points(
                self.collection,
                query=self._vector(plan.nearest.query),
                using=plan.nearest.using,
                query_filter=self._filter(plan),
                limit=plan.limit,
                with_payload=plan.with_payload,
                with_vectors=False,
            ),
        )
        return [
            StoredPoint(normal_id(point.id), dict(point.payload or {}), float(point.score)) for point in response.points
        ]

    def _vector(self, query: Any) -> Any:
        if isinstance(query, SparseTerms):
            return self._models.SparseVector(indices=query.indices, values=query.values)
        return query.tolist() if isinstance(query, np.ndarray) else query

    def _filter(self, plan: QueryPlan) -> Any:
        models = self._models
        must: list[Any] = [_qdrant_condition(models, c, plan.metadata_prefix) for c in plan.conditions]
        if plan.point_ids is not None:
            must.append(models.HasIdCondition(has_id=list(plan.point_ids)))
        return models.Filter(must=must) if must else None

    def add_vector(self, name: str, size: int) -> None:
        if name in self._calls("inspecting the collection", lambda: _vector_names(self.client, self.collection)):
            return
        models = self._models
        config = models.DenseVectorNameConfig(dense=models.DenseVectorConfig(size=size, distance=models.Distance.DOT))
        self._calls("adding a vector", lambda: self.client.create_vector_name(self.collection, name, config))

    def lacking_vector(self, name: str, having: str, limit: int) -> list[PointId]:
        models = self._models
        lacking = models.Filter(
            must=[models.HasVectorCondition(has_vector=having)],
            must_not=[models.HasVectorCondition(has_vector=name)],
        )
        points, _ = self._calls(
            "scroll",
            lambda: self.client.scroll(
                self.collection, scroll_filter=lacking, limit=limit, with_payload=False, with_vectors=False
            ),
        )
        return [normal_id(point.id) for point in points]

    def vectors(self, point_ids: Sequence[PointId], name: str) -> dict[PointId, Any]:
        records = self._calls(
            "retrieve",
            lambda: self.client.retrieve(self.collection, list(point_ids), with_payload=False, with_vectors=[name]),
        )
        return {normal_id(record.id): named_vector(record.vector, name) for record in records}

    def set_vectors(self, name: str, vectors: dict[PointId, Any]) -> None:
        models = self._models
        points = [models.PointVectors(id=pid, vector={name: np.asarray(v).tolist()}) for pid, v in vectors.items()]
        # Setting a point's vector again writes the same vector: safe to repeat.
        self._calls("update_vectors", lambda: self.client.update_vectors(self.collection, points, wait=True))

    def close(self) -> None:
        # The client may be shared with the caller's own code (langchain-qdrant, LlamaIndex): leave it open.
        return None


def _qdrant_condition(models: Any, condition: Condition, prefix: str) -> Any:
    key = payload_key(prefix, condition.key)
    if condition.kind == "eq":
        return models.FieldCondition(key=key, match=models.MatchValue(value=condition.value))
    if condition.kind == "any":
        return models.FieldCondition(key=key, match=models.MatchAny(any=condition.value))
    return models.FieldCondition(key=key, range=models.Range(**condition.value))
