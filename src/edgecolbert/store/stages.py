"""The first stages a store search can use; light, so the command line can list them without the engines."""

from __future__ import annotations

from typing import Literal, get_args

from edgecolbert.errors import InvalidInputError

FirstStageName = Literal["bm25", "dense", "hybrid"]
FIRST_STAGES: tuple[FirstStageName, ...] = get_args(FirstStageName)
"""The first stages a store search can use: BM25, the dense vector, or both fused with RRF."""

EVAL_FIRST_STAGES: tuple[FirstStageName, ...] = ("bm25",)
"""The first stages ``edgecolbert eval`` measures: the ones every store it builds has."""


def check_first_stage(first_stage: object) -> None:
    """Refuse a first-stage name that is not one of :data:`FIRST_STAGES` (None, the store's default, passes)."""
    if first_stage is not None and first_stage not in FIRST_STAGES:
        names = ", ".join(repr(name) for name in FIRST_STAGES)
        raise InvalidInputError(
            f"first_stage is one of {names} (or None for the store's default); got {first_stage!r}."
        )
