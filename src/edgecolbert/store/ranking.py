"""Search as engine-neutral steps whose every cut breaks ties by one stable rule.

An engine orders equal scores in no fixed order, so a limit that cuts through a run of ties keeps
different points from one call to the next (and RRF, which fuses ranks, makes such runs common).
Each cut here therefore asks the engine for more than it keeps, until the points tied with the last
one kept are all in, then orders by (score descending, point id ascending) and cuts itself. Identical
calls on an unchanged store return identical ids, order and scores, on either engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from edgecolbert.store.engine import Engine, FirstStage, PointId, QueryPlan, StoredPoint
from edgecolbert.store.filters import Condition

RRF_K = 60


def rank_key(point: StoredPoint) -> tuple[float, int, int, str]:
    """Best score first; equal scores by point id (integers before UUIDs, each in ascending order)."""
    pid = point.point_id
    return (-point.score, 0, pid, "") if isinstance(pid, int) else (-point.score, 1, 0, str(pid))


def exact_top(engine: Engine, plan: QueryPlan) -> list[StoredPoint]:
    """The plan's best ``plan.limit`` points in :func:`rank_key` order, whichever order the engine gives ties.

    The engine is asked for one point more than kept; while the last one it returns still ties with
    the last one kept, the request doubles. A store whose scores rarely tie pays one extra point.
    """
    wide = plan.limit + 1
    while True:
        points = sorted(engine.query(replace(plan, limit=wide)), key=rank_key)
        if len(points) < wide or points[-1].score < points[plan.limit - 1].score:
            return points[: plan.limit]
        wide *= 2


def first_stage_top(
    engine: Engine,
    stages: Sequence[FirstStage],
    limit: int,
    conditions: Sequence[Condition],
    metadata_prefix: str,
    *,
    with_payload: bool,
) -> list[StoredPoint]:
    """The best ``limit`` candidates of the first stage: one stage by its scores, several fused with RRF.

    RRF scores a point ``sum(1 / (RRF_K + rank))`` over the stages that return it, rank counted from 0
    in each stage's own top list, as Qdrant's fusion does (so 2/60 at most). That list holds ``limit``
    points, or the stage's ``share`` of them.
    """
    plans = [
        QueryPlan(
            stage,
            max(1, math.ceil(limit * stage.share)),
            conditions=conditions,
            metadata_prefix=metadata_prefix,
            with_payload=with_payload,
        )
        for stage in stages
    ]
    if len(plans) == 1:
        return exact_top(engine, plans[0])
    fused: dict[PointId, StoredPoint] = {}
    for plan in plans:
        for rank, point in enumerate(exact_top(engine, replace(plan, with_payload=False))):
            previous = fused.get(point.point_id)
            score = (previous.score if previous else 0.0) + 1.0 / (RRF_K + rank)
            fused[point.point_id] = StoredPoint(point.point_id, {}, score)
    return sorted(fused.values(), key=rank_key)[:limit]


def with_payloads(engine: Engine, points: list[StoredPoint]) -> list[StoredPoint]:
    """The points with their stored payloads, in the same order; points deleted meanwhile are left out."""
    found = engine.payloads([point.point_id for point in points], None)
    return [replace(point, payload=found[point.point_id]) for point in points if point.point_id in found]
