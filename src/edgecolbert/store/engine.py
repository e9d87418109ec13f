"""The few primitives a storage engine provides; everything else is shared engine-neutral code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgecolbert.store.filters import Condition

PointId = int | str


def normal_id(value: object) -> PointId:
    """A point id as the store hands it out: an integer, or the string form of anything else (a UUID)."""
    return value if isinstance(value, int) else str(value)


def named_vector(vector: object, name: str) -> Any:
    """The vector ``name`` of a point retrieved with only that vector (engines return named vectors as a dict)."""
    vectors = vector if isinstance(vector, dict) else {}
    return vectors[name]


@dataclass(frozen=True)
class SparseTerms:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class PreparedPoint:
    """A document ready to upsert: vectors already computed, payload already built."""

    point_id: PointId
    colbert: np.ndarray
    payload: dict[str, Any]
    bm25: SparseTerms | None = None
    dense: list[float] | None = None
    muvera: np.ndarray | None = None


@dataclass(frozen=True)
class FirstStage:
    """One query vector and the named vector it searches: a first stage, or the colbert multivector.

    ``share`` is the part of the candidate count this stage's own top list takes when several stages are
    fused (1: as many as the fusion keeps).
    """

    using: str
    query: SparseTerms | list[float] | np.ndarray
    share: float = 1.0


@dataclass(frozen=True)
class QueryPlan:
    """One engine query: the ``limit`` points nearest ``nearest`` among those that pass the conditions.

    Engines return them best first but order equal scores as they like; the stores compose these
    queries (first stages, fusion, MaxSim) in :mod:`edgecolbert.store.ranking`, which breaks ties.
    """

    nearest: FirstStage
    limit: int
    conditions: Sequence[Condition] = ()
    metadata_prefix: str = ""
    point_ids: Sequence[PointId] | None = None
    with_payload: bool = True


@dataclass(frozen=True)
class StoredPoint:
    point_id: PointId
    payload: dict[str, Any]
    score: float = 0.0


class Engine(Protocol):
    def payloads(self, point_ids: Sequence[PointId], keys: Sequence[str] | None) -> dict[PointId, dict[str, Any]]:
        """The listed payload keys (all when None) of those points that exist."""
        ...

    def upsert(self, points: Sequence[PreparedPoint]) -> None: ...

    def set_payload(self, point_id: PointId, payload: dict[str, Any]) -> None: ...

    def delete(self, point_ids: Sequence[PointId]) -> None: ...

    def count(self) -> int: ...

    def query(self, plan: QueryPlan) -> list[StoredPoint]: ...

    def add_vector(self, name: str, size: int) -> None:
        """Create a dot-product dense vector ``name`` unless the collection already has it."""
        ...

    def lacking_vector(self, name: str, having: str, limit: int) -> list[PointId]:
        """Up to ``limit`` ids of points that have the vector ``having`` but not ``name``."""
        ...

    def vectors(self, point_ids: Sequence[PointId], name: str) -> dict[PointId, Any]:
        """The stored ``name`` vectors of those points that exist, as the engine returns them."""
        ...

    def set_vectors(self, name: str, vectors: dict[PointId, np.ndarray]) -> None:
        """Set (or overwrite) one named vector of existing points."""
        ...

    def close(self) -> None: ...
