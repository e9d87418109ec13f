"""The embedded engine: Qdrant Edge running in this process, persisted in a local folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import StoreDiskFullError, StoreError, StoreLockedError
from edgecolbert.store.base import BaseStore, DenseEmbedder
from edgecolbert.store.defaults import DEFAULT_STORE_PATH
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
from edgecolbert.store.options import StoreOptions, resolve_store_model
from edgecolbert.store.schema import (
    BM25,
    COLBERT,
    MUVERA,
    Datatype,
    Quantization,
    StoreSchema,
    check_model,
    load_schema,
)

logger = logging.getLogger(__name__)

SCHEMA_FILE = "edgecolbert.json"
SHARD_DIR = "shard"
SHARD_CONFIG_FILE = "edge_config.json"
# The document count at the last clean close; an open that finds fewer has lost segment files.
CLOSED_COUNT_FILE = "closed-count.json"


# Qdrant Edge writes through memory maps (two 32 MiB write-ahead-log files, sparse segment files). A page the
# disk cannot back kills the process with SIGBUS instead of raising, so writes and opens keep this much free.
DISK_MARGIN_BYTES = 128 * 2**20
# A write lands in the write-ahead log and again in a segment, with float32 vectors and indexes on top.
WRITE_AMPLIFICATION = 4
# New stores keep float32 token vectors unless told otherwise: Qdrant Edge's MaxSim calls a similarity per
# query and document vector pair, and over the same candidates its float16 path took 1.2-1.7x the time of
# float32 (twice the disk for the vectors; benchmarks/store_search_and_indexing.py --layouts). Stores keep
# the datatype they were created with.
DEFAULT_DATATYPE: Datatype = "float32"
# New stores leave their vectors in memory-mapped files, read through the page cache, instead of the
# engine reading them all into its own memory at every open: on the 5,183-document SciFact store
# (384-dim float32 rows, 2.2 GB) that read was most of a cold search's time and memory.
DEFAULT_ON_DISK = True


def free_bytes(path: Path) -> int:
    """Free space on the disk holding ``path`` (or its nearest existing parent, for a store not yet created)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(path: Path, needed: int, doing: str, *, amplification: int = WRITE_AMPLIFICATION) -> None:
    """Refuse before the engine runs out of disk mid-write, which it cannot survive.

    ``needed`` is what the caller hands the engine; ``amplification`` how many times that lands on disk.
    """
    free = free_bytes(path)
    wanted = needed * amplification + DISK_MARGIN_BYTES
    if free < wanted:
        raise StoreDiskFullError(
            f"The disk under {path} has {_mib(free)} free; {doing} needs about {_mib(wanted)} "
            f"(including a {_mib(DISK_MARGIN_BYTES)} safety margin). Free some space or move the store, then "
            "retry; everything already acknowledged is kept."
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


class EdgeStore(BaseStore):
    """Document multivectors in an embedded Qdrant Edge shard under ``path``.

    The folder holds the shard (segments and write-ahead log) and ``edgecolbert.json``, the schema
    and the model the vectors came from. Opening an existing folder reloads that model unless one is
    given; a different model is refused. Every acknowledged write is in the write-ahead log, so a
    killed process loses nothing it reported as stored.

    ``on_disk`` (new stores only; default True) keeps the vectors in memory-mapped files that
    searches read through the page cache; ``on_disk=False`` has the engine read them into its own
    memory whenever the store opens. An existing store keeps what it was created with.
    """

    engine: EdgeEngine

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
        muvera: MuveraOption = None,
        on_disk: bool = DEFAULT_ON_DISK,
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
            muvera=muvera,
            default_datatype=DEFAULT_DATATYPE,
        )
        existing = _read_schema(self.path)
        self.model, self.schema = resolve_store_model(existing, model, options, dense, self.where, model_kwargs)
        check_free_space(self.path, 0, "opening the store")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store folder {self.path}: {exc.strerror or exc}.") from exc
        # The engine's lock comes first: only its holder writes anything, the record included.
        self.engine = EdgeEngine(self.path / SHARD_DIR, self.schema, on_disk=on_disk, create=existing is None)
        try:
            if existing is None:
                _claim_record(self.path, self.schema, self.model, self.where)
            _check_closed_count(self.path, self.engine.count())
        except BaseException:
            self.engine.close()
            raise
        self._init_common(dense, encode_batch_size)

    def close(self) -> None:
        """Flush and release the engine, recording the count the next open must find."""
        if self._closed:
            return
        with self._write_lock:
            count = self.engine.count()
            super().close()
        _write_atomically(self.path / CLOSED_COUNT_FILE, json.dumps({"count": count}))

    def _record_schema(self, schema: StoreSchema) -> None:
        _write_schema(self.path, schema)
        self.schema = schema

    def optimize(self) -> None:
        """Merge segments after a bulk load; searches over many small segments are slower."""
        self._check_open()
        with self._write_lock:
            # Merging writes the merged segments beside the old ones, then drops those: at most their size again
            # (the files already hold the write amplification, so it does not apply twice).
            check_free_space(self.path, _stored_bytes(self.path / SHARD_DIR), "optimizing", amplification=1)
            self.engine.shard.optimize()

    def __repr__(self) -> str:
        return f"EdgeStore(path={str(self.path)!r}, model={self.schema.model!r})"


def _stored_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` occupy on disk (the engine's files are sparse)."""
    return sum(file.stat().st_blocks * 512 for file in folder.rglob("*") if file.is_file())


def _read_schema(path: Path) -> StoreSchema | None:
    file = path / SCHEMA_FILE
    if not file.is_file():
        if (path / SHARD_DIR).exists():
            raise StoreError(
                f"{path} holds a shard but no {SCHEMA_FILE}: it was not made by edgecolbert, or its creation was "
                "interrupted before anything was stored (then delete the folder and create the store again)."
            )
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path} is a file, not a store folder.")
        return None
    schema = _parse_record(file)
    if not (path / SHARD_DIR).is_dir():
        raise StoreError(
            f"{path} has its {SCHEMA_FILE} but no {SHARD_DIR} folder, so its documents are gone; restore the folder "
            "from a backup, or delete it and index again."
        )
    return schema


def _parse_record(file: Path) -> StoreSchema:
    try:
        return load_schema(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise StoreError(f"{file} is unreadable ({exc}); restore it from a backup or index into a new folder.") from exc


def _claim_record(path: Path, schema: StoreSchema, model: ColBERT, where: str) -> None:
    """Record a new store's schema, unless a process that created the folder first already did.

    Called with the engine's lock held, so no other writer can be between the check and the write.
    """
    file = path / SCHEMA_FILE
    if not file.is_file():
        _write_schema(path, schema)
        return
    recorded = _parse_record(file)
    if recorded != schema:
        check_model(recorded, model, where)
        raise StoreError(
            f"{where} was created by another process at the same time with other settings; open it without "
            "creation options to use it as it was created, or index into a new folder."
        )


def _check_closed_count(path: Path, count: int) -> None:
    """Compare with the count at the last clean close (after a crash there is none to compare with).

    Qdrant Edge opens a shard whose segment folder was deleted without complaint, minus those documents.
    The file is removed once checked, so a crash before the next clean close cannot leave a stale count.
    """
    file = path / CLOSED_COUNT_FILE
    try:
        expected = json.loads(file.read_text(encoding="utf-8"))["count"]
    except FileNotFoundError:
        return
    except (ValueError, KeyError, TypeError, OSError):
        expected = None  # a damaged count file proves nothing about the documents
    if isinstance(expected, int) and expected != count:
        raise StoreError(
            f"{path} held {expected} documents when it was last closed but opens with {count}: files under "
            f"{path / SHARD_DIR / 'segments'} are missing or damaged. Restore the folder from a backup, or delete "
            f"{file} to open it with what is left."
        )
    file.unlink(missing_ok=True)


def _write_schema(path: Path, schema: StoreSchema) -> None:
    _write_atomically(path / SCHEMA_FILE, schema.model_dump_json(indent=2))


def _write_atomically(file: Path, text: str) -> None:
    """Write to a temporary file and rename it, so a crash leaves the old file or the whole new one."""
    temporary = file.parent / f".{file.name}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, file)


class GuardedShard:
    """The shard, its failures raised as :class:`StoreError` naming the store.

    Qdrant Edge raises a bare ``Exception`` ("Service runtime error: ... out of bounds") or a Rust panic
    (a ``BaseException``) when a file it reads is damaged, typically on the first search after an open.
    """

    def __init__(self, shard: Any, store: Path) -> None:
        self._shard = shard
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._shard, name)
        if not callable(method):
            return method

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # pyo3's PanicException derives from BaseException
                raise StoreError(
                    f"Qdrant Edge failed to {name} the store at {self._store}: {type(exc).__name__}: {exc}. If this "
                    "repeats, its files are damaged: restore the folder from a backup or index into a new one."
                ) from exc

        return guarded


class EdgeEngine:
    """The engine primitives on a Qdrant Edge shard."""

    def __init__(self, folder: Path, schema: StoreSchema, *, on_disk: bool, create: bool = False) -> None:
        import qdrant_edge as edge

        self._edge = edge
        self._schema = schema
        self._folder = folder
        _check_id_trackers(folder)
        try:
            # A store that has a record is never created over: a missing config is damage, not a new store.
            if not create or (folder / SHARD_CONFIG_FILE).exists():
                _check_layout(folder, schema)
                shard = edge.EdgeShard.load(str(folder))
            else:
                shard = edge.EdgeShard.create(str(folder), _edge_config(edge, schema, on_disk))
            self.shard = GuardedShard(shard, folder.parent)
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
        return {normal_id(record.id): dict(record.payload or {}) for record in records}

    def upsert(self, points: Sequence[PreparedPoint]) -> None:
        edge = self._edge
        check_free_space(self._folder, sum(_point_bytes(point) for point in points), "writing this batch")
        self.shard.update(edge.UpdateOperation.upsert_points([self._point(point) for point in points]))

    def _point(self, point: PreparedPoint) -> Any:
        edge = self._edge
        vectors: dict[str, Any] = {COLBERT: point.colbert}
        if point.bm25 is not None:
            vectors[BM25] = edge.SparseVector(point.bm25.indices, point.bm25.values)
        if point.dense is not None and self._schema.dense_name is not None:
            vectors[self._schema.dense_name] = point.dense
        if point.muvera is not None:
            vectors[MUVERA] = point.muvera
        return edge.Point(point.point_id, vectors, point.payload)

    def set_payload(self, point_id: PointId, payload: dict[str, Any]) -> None:
        check_free_space(self._folder, _json_bytes(payload), "updating metadata")
        self.shard.update(self._edge.UpdateOperation.set_payload([point_id], payload))

    def delete(self, point_ids: Sequence[PointId]) -> None:
        check_free_space(self._folder, 64 * len(point_ids), "deleting")
        self.shard.update(self._edge.UpdateOperation.delete_points(list(point_ids)))

    def count(self) -> int:
        return int(self.shard.count(self._edge.CountRequest(exact=True)))

    def query(self, plan: QueryPlan) -> list[StoredPoint]:
        edge = self._edge
        request = edge.QueryRequest(
            limit=plan.limit,
            query=edge.Query.Nearest(self._vector(plan.nearest.query), using=plan.nearest.using),
            filter=self._filter(plan),
            with_payload=plan.with_payload,
            with_vector=False,
        )
        return [StoredPoint(normal_id(p.id), dict(p.payload or {}), float(p.score)) for p in self.shard.query(request)]

    def _vector(self, query: Any) -> Any:
        return self._edge.SparseVector(query.indices, query.values) if isinstance(query, SparseTerms) else query

    def _filter(self, plan: QueryPlan) -> Any:
        edge = self._edge
        must = [_edge_condition(edge, condition, plan.metadata_prefix) for condition in plan.conditions]
        if plan.point_ids is not None:
            must.append(edge.HasIdCondition(set(plan.point_ids)))
        return edge.Filter(must=must) if must else None

    def add_vector(self, name: str, size: int) -> None:
        if name in _shard_vectors(self._folder):
            return
        check_free_space(self._folder, 0, "adding a vector")
        self.shard.update(self._edge.UpdateOperation.create_dense_vector(name, size, self._edge.Distance.Dot))

    def lacking_vector(self, name: str, having: str, limit: int) -> list[PointId]:
        edge = self._edge
        lacking = edge.Filter(must=[edge.HasVectorCondition(having)], must_not=[edge.HasVectorCondition(name)])
        records, _ = self.shard.scroll(edge.ScrollRequest(limit=limit, filter=lacking, with_payload=False))
        return [normal_id(record.id) for record in records]

    def vectors(self, point_ids: Sequence[PointId], name: str) -> dict[PointId, Any]:
        records = self.shard.retrieve(list(point_ids), with_payload=False, with_vector=[name])
        return {normal_id(record.id): named_vector(record.vector, name) for record in records}

    def set_vectors(self, name: str, vectors: dict[PointId, Any]) -> None:
        edge = self._edge
        check_free_space(self._folder, sum(4 * len(vector) for vector in vectors.values()), "writing vectors")
        points = [edge.PointVectors(point_id, {name: vector}) for point_id, vector in vectors.items()]
        self.shard.update(edge.UpdateOperation.update_vectors(points))

    def close(self) -> None:
        # Every load replays the engine's log from its newest operation on, which after indexing is a
        # whole batch of token vectors read again at each open (0.7 s of a cold search on the SciFact
        # store); an empty operation written last makes that replay free.
        self.shard.update(self._edge.UpdateOperation.delete_points([]))
        self.shard.flush()
        self.shard.close()


def _shard_vectors(folder: Path) -> dict[str, Any]:
    """The shard's dense vectors as its config file records them; the engine offers no other way to list them."""
    config = json.loads((folder / SHARD_CONFIG_FILE).read_text(encoding="utf-8"))
    vectors = config.get("vectors", {}) if isinstance(config, dict) else {}
    return vectors if isinstance(vectors, dict) else {}


def _check_layout(folder: Path, schema: StoreSchema) -> None:
    """Refuse a shard whose token vectors are not stored as the store's record says.

    The engine would open it and score with its own layout, while writes and the MUVERA encodings
    follow the record; a copied or restored ``edgecolbert.json`` must not silently mix the two.
    """
    try:
        params = _shard_vectors(folder).get(COLBERT)
    except (OSError, ValueError):
        return  # an unreadable config is the engine's to report when it loads
    if not isinstance(params, dict):
        return
    stored = _layout(params.get("datatype") or "float32", params.get("size"), bool(params.get("quantization_config")))
    recorded = _layout(schema.datatype, schema.vector_size, schema.quantization is not None)
    if stored != recorded:
        raise StoreError(
            f"{folder.parent / SCHEMA_FILE} records token vectors as {recorded}, but the shard in {folder} "
            f"stores them as {stored}: the record belongs to another store. Restore the folder's {SCHEMA_FILE} "
            "from a backup, or index into a new store."
        )


def _layout(datatype: object, size: object, quantized: bool) -> str:
    return f"{datatype}, {size} dimensions{', int8-quantized' if quantized else ''}"


# Qdrant Edge's id-tracker log: a type byte, then the external id, then (for inserts) a u32 internal id.
_TRACKER_ENTRIES = {1: (8, True), 2: (16, True), 3: (8, False), 4: (16, False)}
# Internal ids are dense slots; one far past the slots a segment can have is damage, and the engine would
# allocate a table that large (gigabytes) and abort the process.
_TRACKER_SLACK = 1_000_000


def _check_id_trackers(folder: Path) -> None:
    for mappings in sorted(folder.glob("segments/*/mutable_id_tracker.mappings")):
        data = mappings.read_bytes()
        versions = mappings.with_name("mutable_id_tracker.versions")
        slots = versions.stat().st_size // 8 if versions.exists() else 0
        internal_ids, position = [], 0
        while position < len(data) and data[position] in _TRACKER_ENTRIES:
            id_bytes, insert = _TRACKER_ENTRIES[data[position]]
            end = position + 1 + id_bytes + (4 if insert else 0)
            if end > len(data):
                break  # a torn last entry is the engine's to handle
            if insert:
                internal_ids.append(int.from_bytes(data[end - 4 : end], "little"))
            position = end
        limit = max(len(internal_ids), slots) + _TRACKER_SLACK
        if internal_ids and max(internal_ids) >= limit:
            raise StoreError(
                f"{mappings} is damaged (it maps a document to slot {max(internal_ids)} of at most {limit}); "
                f"the store at {folder.parent} cannot be opened. Restore the folder from a backup or index again."
            )


def _edge_condition(edge: Any, condition: Condition, prefix: str) -> Any:
    key = payload_key(prefix, condition.key)
    if condition.kind == "eq":
        return edge.FieldCondition(key=key, match=edge.MatchValue(condition.value))
    if condition.kind == "any":
        return edge.FieldCondition(key=key, match=edge.MatchAny(condition.value))
    return edge.FieldCondition(key=key, range=edge.RangeFloat(**condition.value))


def _edge_config(edge: Any, schema: StoreSchema, on_disk: bool) -> Any:
    datatype = (
        edge.VectorStorageDatatype.Float16 if schema.datatype == "float16" else edge.VectorStorageDatatype.Float32
    )
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
    muvera = stored_params(schema)
    if muvera is not None:
        # Encodings' inner products approximate MaxSim, so the index ranks by dot product.
        vectors[MUVERA] = edge.EdgeVectorParams(
            size=fde_size(muvera, schema),
            distance=edge.Distance.Dot,
            hnsw_config=edge.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000),
            on_disk=on_disk,
        )
    sparse = {BM25: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)} if schema.bm25 else None
    return edge.EdgeConfig(vectors=vectors, sparse_vectors=sparse)


def _point_bytes(point: PreparedPoint) -> int:
    sparse = 0 if point.bm25 is None else 8 * len(point.bm25.indices)
    dense = 0 if point.dense is None else 4 * len(point.dense)
    muvera = 0 if point.muvera is None else 4 * len(point.muvera)
    return int(point.colbert.size) * 4 + sparse + dense + muvera + _json_bytes(point.payload)


def _json_bytes(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
