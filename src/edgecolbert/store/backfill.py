"""Giving an existing store the MUVERA vector, computed from its stored multivectors (no re-encoding).

Resumable by construction: the settings are recorded first (marked incomplete), then each batch is
the points that still lack the vector, so a run killed at any point leaves acknowledged batches
done and the next run fills only the rest. The record is marked complete once no point lacks it.
Points added meanwhile get the vector as they are written, since the record already names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edgecolbert.scoring.muvera import FdeParams
from edgecolbert.store.engine import Engine, PointId
from edgecolbert.store.muvera_stage import check_same, document_encodings, fde_size, stored_params
from edgecolbert.store.schema import COLBERT, MUVERA, StoreSchema
from edgecolbert.vectors import MultiVectors


class BackfilledStore(Protocol):
    schema: StoreSchema
    engine: Engine
    where: str

    def _record_schema(self, schema: StoreSchema) -> None: ...


def add_muvera(
    store: BackfilledStore,
    params: FdeParams | None,
    *,
    batch_size: int,
    progress: bool,
    on_batch: Callable[[list[PointId]], None] | None,
) -> int:
    """Fill the MUVERA vector of every point lacking it; returns how many points were filled."""
    chosen = _start(store, params)
    store.engine.add_vector(MUVERA, fde_size(chosen, store.schema))
    done = 0
    from tqdm.auto import tqdm  # slow to import; a store opened to search never needs it

    with tqdm(unit="doc", desc="muvera", disable=not progress, dynamic_ncols=True) as bar:
        while point_ids := store.engine.lacking_vector(MUVERA, COLBERT, batch_size):
            _fill(store, point_ids)
            done += len(point_ids)
            bar.update(len(point_ids))
            if on_batch is not None:
                on_batch(point_ids)
    if not store.schema.muvera_complete:
        store._record_schema(store.schema.model_copy(update={"muvera_complete": True}))
    return done


def _start(store: BackfilledStore, params: FdeParams | None) -> FdeParams:
    """The settings to fill with: the recorded ones (checked against ``params``), else ``params`` recorded now."""
    stored = stored_params(store.schema)
    if stored is not None:
        check_same(stored, params, store.where)
        return stored
    chosen = params or FdeParams()
    store._record_schema(store.schema.model_copy(update={"muvera": chosen.to_dict(), "muvera_complete": False}))
    return chosen


def _fill(store: BackfilledStore, point_ids: list[PointId]) -> None:
    found = store.engine.vectors(point_ids, COLBERT)
    ids = [pid for pid in point_ids if pid in found]
    # The shared float32 conversion: engines return lists, or float16 arrays, per token.
    stored = list(MultiVectors.from_arrays([found[pid] for pid in ids], dim=store.schema.vector_size))
    encodings = document_encodings(store.schema, stored)
    if encodings is not None:
        store.engine.set_vectors(MUVERA, dict(zip(ids, encodings)))
