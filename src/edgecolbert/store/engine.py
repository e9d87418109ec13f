"""The few primitives a storage engine provides; everything else is shared engine-neutral code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from edgecolbert.store.filters import Condition

PointId = int | str


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


@dataclass(frozen=True)
class FirstStage:
    """One candidate source: the named vector it searches and the query for it."""

    using: str
    query: SparseTerms | list[float]


@dataclass(frozen=True)
class QueryPlan:
    """One engine query: candidates from the first stage(s), then MaxSim on the colbert vector.

    Without a ``colbert`` query the first stage alone ranks: one stage by its own scores, several fused
    with RRF, each limited to ``prefetch_limit`` before fusion.
    """

    colbert: np.ndarray | None
    limit: int
    stages: Sequence[FirstStage] = ()
    prefetch_limit: int = 0
    conditions: Sequence[Condition] = ()
    metadata_prefix: str = ""
    point_ids: Sequence[PointId] | None = None
    fusion: Literal["rrf"] = "rrf"
    extra: Mapping[str, Any] = field(default_factory=dict)


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

    def close(self) -> None: ...
