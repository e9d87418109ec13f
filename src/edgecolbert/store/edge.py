"""The embedded engine: Qdrant Edge running in this process, persisted in a local folder."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import StoreError, StoreLockedError
from edgecolbert.store.base import BaseStore, DenseEmbedder
from edgecolbert.store.engine import FirstStage, PointId, PreparedPoint, QueryPlan, StoredPoint
from edgecolbert.store.filters import Condition, payload_key
from edgecolbert.store.options import StoreOptions, resolve_store_model
from edgecolbert.store.schema import BM25, COLBERT, Datatype, Quantization, StoreSchema

logger = logging.getLogger(__name__)

DEFAULT_STORE_PATH = "./edgecolbert_data"
SCHEMA_FILE = "edgecolbert.json"
SHARD_DIR = "shard"
_RRF_K = 60


class EdgeStore(BaseStore):
    """Document multivectors in an embedded Qdrant Edge shard under ``path``.

    The folder holds the shard (segments and write-ahead log) and ``edgecolbert.json``, the schema
    and the model the vectors came from. Opening an existing folder reloads that model unless one is
    given; a different model is refused. Every acknowledged write is in the write-ahead log, so a
    killed process loses nothing it reported as stored.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_STORE_PATH,
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        datatype: Datatype | None = None,
        quantization: Quantization | None = None,
        vector_size: int | None = None,
        dense: DenseEmbedder | None = None,
        dense_size: int | None = None,
        bm25: bool = True,
        bm25_language: str = "english",
        on_disk: bool = False,
        encode_batch_size: int = 16,
        **model_kwargs: Any,
    ) -> None:
        self.path = Path(path)
        self.where = f"the store at {self.path}"
        options = StoreOptions(
            datatype=datatype,
            quantization=quantization,
            vector_size=vector_size,
            dense_size=dense_size,
            bm25=bm25,
            bm25_language=bm25_language,
        )
        existing = _read_schema(self.path)
        self.model, self.schema = resolve_store_model(existing, model, options, dense, self.where, model_kwargs)
        if existing is None:
            _write_schema(self.path, self.schema)
        self.engine = EdgeEngine(self.path / SHARD_DIR, self.schema, on_disk=on_disk)
        self._init_common(dense, encode_batch_size)

    def optimize(self) -> None:
        """Merge segments after a bulk load; searches over many small segments are slower."""
        self._check_open()
        with self._write_lock:
            self.engine.shard.optimize()

    def __repr__(self) -> str:
        return f"EdgeStore(path={str(self.path)!r}, model={self.schema.model!r})"


def _read_schema(path: Path) -> StoreSchema | None:
    file = path / SCHEMA_FILE
    if not file.is_file():
        if (path / SHARD_DIR).exists():
            raise StoreError(f"{path} holds a shard but no {SCHEMA_FILE}: it was not made by edgecolbert.")
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path} is a file, not a store folder.")
        return None
    try:
        return StoreSchema.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise StoreError(f"{file} is unreadable ({exc}); restore it from a backup or index into a new folder.") from exc


def _write_schema(path: Path, schema: StoreSchema) -> None:
    """Write atomically, so a crash leaves either no schema or a whole one."""
    path.mkdir(parents=True, exist_ok=True)
    temporary = path / f".{SCHEMA_FILE}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(schema.model_dump_json(indent=2), encoding="utf-8")
    os.replace(temporary, path / SCHEMA_FILE)


class EdgeEngine:
    """The engine primitives on a Qdrant Edge shard."""

    def __init__(self, folder: Path, schema: StoreSchema, *, on_disk: bool) -> None:
        import qdrant_edge as edge

        self._edge = edge
        self._schema = schema
        try:
            if (folder / "edge_config.json").exists():
                self.shard = edge.EdgeShard.load(str(folder))
            else:
                self.shard = edge.EdgeShard.create(str(folder), _edge_config(edge, schema, on_disk))
        except Exception as exc:  # qdrant_edge raises bare Exception for every failure
            if "WouldBlock" in str(exc):
                raise StoreLockedError(
                    f"{folder.parent} is open in another process (or another store object here); "
                    "close that one first: a store folder has one owner at a time."
                ) from exc
            raise StoreError(f"Could not open the Qdrant Edge shard in {folder}: {exc}") from exc

    def payloads(self, point_ids: Sequence[PointId], keys: Sequence[str] | None) -> dict[PointId, dict[str, Any]]:
        if not point_ids:
            return {}
        records = self.shard.retrieve(list(point_ids), with_payload=list(keys) if keys else True, with_vector=False)
        return {_normal_id(record.id): dict(record.payload or {}) for record in records}

    def upsert(self, points: Sequence[PreparedPoint]) -> None:
        edge = self._edge
        self.shard.update(edge.UpdateOperation.upsert_points([self._point(point) for point in points]))

    def _point(self, point: PreparedPoint) -> Any:
        edge = self._edge
        vectors: dict[str, Any] = {COLBERT: point.colbert}
        if point.bm25 is not None:
            vectors[BM25] = edge.SparseVector(point.bm25.indices, point.bm25.values)
        if point.dense is not None and self._schema.dense_name is not None:
            vectors[self._schema.dense_name] = point.dense
        return edge.Point(point.point_id, vectors, point.payload)

    def set_payload(self, point_id: PointId, payload: dict[str, Any]) -> None:
        self.shard.update(self._edge.UpdateOperation.set_payload([point_id], payload))

    def delete(self, point_ids: Sequence[PointId]) -> None:
        self.shard.update(self._edge.UpdateOperation.delete_points(list(point_ids)))

    def count(self) -> int:
        return int(self.shard.count(self._edge.CountRequest(exact=True)))

    def query(self, plan: QueryPlan) -> list[StoredPoint]:
        edge = self._edge
        where = self._filter(plan)
        if plan.colbert is not None:
            query, prefetches = edge.Query.Nearest(plan.colbert, using=COLBERT), self._prefetches(plan, where)
        elif len(plan.stages) == 1:
            query, prefetches = self._nearest(plan.stages[0]), []
        else:
            query = edge.Fusion.Rrf(k=_RRF_K)
            prefetches = [self._leaf(stage, plan.prefetch_limit, where) for stage in plan.stages]
        request = edge.QueryRequest(
            limit=plan.limit,
            query=query,
            prefetches=prefetches or None,
            filter=where,
            with_payload=True,
            with_vector=False,
        )
        return [StoredPoint(_normal_id(p.id), dict(p.payload or {}), float(p.score)) for p in self.shard.query(request)]

    def _prefetches(self, plan: QueryPlan, where: Any) -> list[Any]:
        edge = self._edge
        leaves = [self._leaf(stage, plan.prefetch_limit, where) for stage in plan.stages]
        if len(leaves) <= 1:
            return leaves
        return [edge.Prefetch(limit=plan.prefetch_limit, query=edge.Fusion.Rrf(k=_RRF_K), prefetches=leaves)]

    def _leaf(self, stage: FirstStage, limit: int, where: Any) -> Any:
        return self._edge.Prefetch(limit=limit, query=self._nearest(stage), filter=where)

    def _nearest(self, stage: FirstStage) -> Any:
        edge = self._edge
        query = stage.query
        vector = query if isinstance(query, list) else edge.SparseVector(query.indices, query.values)
        return edge.Query.Nearest(vector, using=stage.using)

    def _filter(self, plan: QueryPlan) -> Any:
        edge = self._edge
        must = [_edge_condition(edge, condition, plan.metadata_prefix) for condition in plan.conditions]
        if plan.point_ids is not None:
            must.append(edge.HasIdCondition(set(plan.point_ids)))
        return edge.Filter(must=must) if must else None

    def close(self) -> None:
        self.shard.flush()
        self.shard.close()


def _edge_condition(edge: Any, condition: Condition, prefix: str) -> Any:
    key = payload_key(prefix, condition.key)
    if condition.kind == "eq":
        return edge.FieldCondition(key=key, match=edge.MatchValue(condition.value))
    if condition.kind == "any":
        return edge.FieldCondition(key=key, match=edge.MatchAny(condition.value))
    return edge.FieldCondition(key=key, range=edge.RangeFloat(**condition.value))


def _edge_config(edge: Any, schema: StoreSchema, on_disk: bool) -> Any:
    datatype = edge.VectorStorageDatatype.Float16 if schema.datatype == "float16" else None
    quantization = (
        edge.ScalarQuantizationConfig(type=edge.ScalarType.Int8, quantile=0.99, always_ram=True)
        if schema.quantization == "int8"
        else None
    )
    vectors = {
        COLBERT: edge.EdgeVectorParams(
            size=schema.vector_size,
            distance=edge.Distance.Dot,
            multivector_config=edge.MultiVectorConfig(edge.MultiVectorComparator.MaxSim),
            datatype=datatype,
            quantization_config=quantization,
            # m=0: the multivector only rescores prefetched candidates, so no graph is built.
            hnsw_config=edge.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            on_disk=on_disk,
        )
    }
    if schema.dense_name is not None and schema.dense_size is not None:
        vectors[schema.dense_name] = edge.EdgeVectorParams(size=schema.dense_size, distance=edge.Distance.Cosine)
    sparse = {BM25: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)} if schema.bm25 else None
    return edge.EdgeConfig(vectors=vectors, sparse_vectors=sparse)


def _normal_id(value: Any) -> PointId:
    return value if isinstance(value, int) else str(value)
