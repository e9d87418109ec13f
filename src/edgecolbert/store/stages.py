"""The first stages a store search can use; light, so the command line can list them without the engines."""

from __future__ import annotations

from typing import Literal, get_args

from edgecolbert.errors import InvalidInputError

FirstStageName = Literal["bm25", "dense", "hybrid", "muvera", "hybrid-muvera"]
FIRST_STAGES: tuple[FirstStageName, ...] = get_args(FirstStageName)
"""The first stages a store search can use: BM25, the dense vector, both fused with RRF, the MUVERA vector, or
BM25 and MUVERA fused."""

MUVERA_STAGES: tuple[FirstStageName, ...] = FIRST_STAGES[3:]
"""The stages that need the store's MUVERA vector."""

HYBRID_MUVERA_SHARE = 0.25
"""The part of the candidates the MUVERA branch of ``"hybrid-muvera"`` contributes before fusion (BM25's
branch takes them all). A quarter kept reranked NDCG@10 higher than an equal share on both SciFact and
Cranfield, where MaxSim ranks some documents only MUVERA finds above relevant ones BM25 found (the
measurements are in the evaluation docs)."""

EVAL_FIRST_STAGES: tuple[FirstStageName, ...] = (FIRST_STAGES[0], *MUVERA_STAGES)
"""The first stages ``edgecolbert eval`` measures: BM25 and those its stores can add from cached vectors."""


def check_first_stage(first_stage: object) -> None:
    """Refuse a first-stage name that is not one of :data:`FIRST_STAGES` (None, the store's default, passes)."""
    if first_stage is not None and first_stage not in FIRST_STAGES:
        names = ", ".join(repr(name) for name in FIRST_STAGES)
        raise InvalidInputError(
            f"first_stage is one of {names} (or None for the store's default); got {first_stage!r}."
        )
