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

EVAL_FIRST_STAGES: tuple[FirstStageName, ...] = (FIRST_STAGES[0], *MUVERA_STAGES)
"""The first stages ``edgecolbert eval`` measures: BM25 and those its stores can add from cached vectors."""


def check_first_stage(first_stage: object) -> None:
    """Refuse a first-stage name that is not one of :data:`FIRST_STAGES` (None, the store's default, passes)."""
    if first_stage is not None and first_stage not in FIRST_STAGES:
        names = ", ".join(repr(name) for name in FIRST_STAGES)
        raise InvalidInputError(
            f"first_stage is one of {names} (or None for the store's default); got {first_stage!r}."
        )
