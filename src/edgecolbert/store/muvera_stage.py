"""The MUVERA first stage: one fixed-dimensional encoding per document in a dot-product HNSW index.

The encoding (:mod:`edgecolbert.scoring.muvera`) is computed from a document's vectors exactly as the
store keeps them: zero-padded to the stored width and rounded to the stored datatype. An encoding
written at indexing time is therefore the one a later backfill computes from the stored vectors, on
either engine. Queries are encoded at the same width with the settings the store records.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgecolbert.errors import InvalidInputError, InvalidTypeError, ModelMismatchError, StoreError
from edgecolbert.scoring.muvera import FdeParams, document_fde, query_fde
from edgecolbert.store.engine import FirstStage
from edgecolbert.store.schema import MUVERA, StoreSchema

MuveraOption = bool | FdeParams | None
HOW_TO_ADD = "add it from the stored vectors with store.add_muvera() (or `edgecolbert backfill-muvera`)"


def check_option(muvera: object) -> None:
    if muvera is not None and not isinstance(muvera, (bool, FdeParams)):
        raise InvalidTypeError(f"muvera is True, False or an FdeParams; got {type(muvera).__name__}.")


def creation_params(muvera: MuveraOption) -> FdeParams | None:
    """The settings a new store records: ``True`` means the defaults."""
    if muvera is True:
        return FdeParams()
    return muvera or None


def stored_params(schema: StoreSchema) -> FdeParams | None:
    return None if schema.muvera is None else FdeParams.from_dict(schema.muvera)


def fde_size(params: FdeParams, schema: StoreSchema) -> int:
    return params.fde_dim(schema.vector_size)


def check_reopen(schema: StoreSchema, muvera: MuveraOption, where: str) -> None:
    """Refuse reopening with settings the store's MUVERA vector was not made with."""
    if not muvera:
        return
    stored = stored_params(schema)
    if stored is None:
        raise StoreError(f"{where} has no muvera vector; {HOW_TO_ADD}.")
    check_same(stored, muvera, where)


def check_same(stored: FdeParams, asked: MuveraOption, where: str) -> None:
    if isinstance(asked, FdeParams) and asked != stored:
        raise ModelMismatchError(
            f"{where} encodes its muvera vectors with {stored}; {asked} encodes differently, so queries would "
            "meet the documents in the wrong coordinates. Leave the muvera settings out (the store's are used), "
            "or index into a new store to change them."
        )


def as_stored(vectors: np.ndarray, schema: StoreSchema) -> np.ndarray:
    """The values the engine keeps for these (already padded) vectors: float16 storage rounds them."""
    if schema.datatype == "float16":
        return vectors.astype(np.float16).astype(np.float32)
    return vectors


def document_encodings(schema: StoreSchema, stored: Sequence[np.ndarray]) -> np.ndarray | None:
    """Encodings of documents' stored-width vectors, ``[n, fde_dim]``; None for a store without the vector."""
    params = stored_params(schema)
    if params is None or not stored:
        return None
    return document_fde([as_stored(vectors, schema) for vectors in stored], params)


def query_stage(schema: StoreSchema, query_vectors: np.ndarray, where: str) -> FirstStage:
    """The MUVERA prefetch for a query's stored-width vectors; refused until every document has the vector."""
    params = stored_params(schema)
    if params is None:
        raise InvalidInputError(
            f"{where} has no muvera vector, so first_stage 'muvera' and 'hybrid-muvera' cannot run; {HOW_TO_ADD}, "
            "or use first_stage='bm25'."
        )
    if not schema.muvera_complete:
        raise InvalidInputError(
            f"{where} has its muvera vector on only some documents (adding it was interrupted); run "
            "store.add_muvera() (or `edgecolbert backfill-muvera`) again to finish it."
        )
    return FirstStage(MUVERA, query_fde(query_vectors, params))
