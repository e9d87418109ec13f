"""Choosing the model and the schema when a store is opened or created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import InvalidInputError, InvalidTypeError, StoreError
from edgecolbert.store.muvera_stage import MuveraOption, check_reopen, creation_params
from edgecolbert.store.muvera_stage import check_option as check_muvera_option
from edgecolbert.store.schema import (
    DENSE,
    Datatype,
    Quantization,
    StoreSchema,
    check_model,
    check_vector_size,
    model_identity,
)

_DATATYPES = ("float32", "float16")
_QUANTIZATIONS = ("int8",)
_DENSE_PROBE = "dimension probe"


@dataclass(frozen=True)
class StoreOptions:
    """Creation options. ``None`` means "the default" when creating and "as stored" when opening."""

    datatype: Datatype | None = None
    quantization: Quantization | None = None
    vector_size: int | None = None
    dense_size: int | None = None
    bm25: bool = True
    bm25_language: str = "english"
    # True or an FdeParams: give documents a MUVERA vector (True: default settings, or the store's when opening).
    muvera: MuveraOption = None
    # What a new store stores when ``datatype`` is None (an EdgeStore asks for edge.DEFAULT_DATATYPE).
    default_datatype: Datatype = "float16"

    def check(self) -> None:
        check_muvera_option(self.muvera)
        if self.datatype is not None and self.datatype not in _DATATYPES:
            raise InvalidInputError(f"datatype is one of {_DATATYPES}; got {self.datatype!r}.")
        if self.quantization is not None and self.quantization not in _QUANTIZATIONS:
            raise InvalidInputError(f"quantization is None or one of {_QUANTIZATIONS}; got {self.quantization!r}.")
        if self.dense_size is not None and (
            isinstance(self.dense_size, bool) or not isinstance(self.dense_size, int) or self.dense_size < 1
        ):
            raise InvalidInputError(f"dense_size must be a positive integer; got {self.dense_size!r}.")


def resolve_store_model(
    existing: StoreSchema | None,
    model: ColBERT | str | os.PathLike[str] | None,
    options: StoreOptions,
    dense: Any,
    where: str,
    model_kwargs: Mapping[str, Any],
) -> tuple[ColBERT, StoreSchema]:
    """The model to encode with and the schema to use: the stored one, or a new one from the options."""
    options.check()
    if existing is not None:
        _check_pooling_kwarg(existing, model_kwargs, where)
        encoder = _load(
            model if model is not None else existing.model, {"pool_factor": existing.pool_factor, **model_kwargs}
        )
        check_model(existing, encoder, where)
        _check_unchanged(existing, options, where)
        check_reopen(existing, options.muvera, where)
        return pooled_as_stored(existing, encoder, where), existing
    encoder = _load(model, model_kwargs)
    return encoder, new_schema(encoder, options, dense)


def pooled_as_stored(schema: StoreSchema, encoder: ColBERT, where: str) -> ColBERT:
    """The encoder, pooling new documents as the stored ones were, so a store never mixes poolings.

    An encoder that asks for no pooling (the default) adopts the store's; one that asks for another
    pool factor is refused, since it was evidently meant to change what gets stored. Queries are never
    pooled, so searching is the same either way.
    """
    if encoder.pool_factor == schema.pool_factor:
        return encoder
    if encoder.pool_factor == 1:
        return encoder.with_pool_factor(schema.pool_factor)
    raise StoreError(_pooling_mismatch(schema, encoder.pool_factor, where))


def _check_pooling_kwarg(schema: StoreSchema, model_kwargs: Mapping[str, Any], where: str) -> None:
    asked = model_kwargs.get("pool_factor")
    if asked is not None and asked != schema.pool_factor:
        raise StoreError(_pooling_mismatch(schema, asked, where))


def _pooling_mismatch(schema: StoreSchema, asked: object, where: str) -> str:
    return (
        f"{where} holds documents pooled with pool_factor={schema.pool_factor}; opened with pool_factor={asked!r} "
        "it would store new documents pooled differently from the old ones. Leave pool_factor out (the store's "
        "is used; queries are never pooled), or index into a new store to change it."
    )


def new_schema(encoder: ColBERT, options: StoreOptions, dense: Any, *, dense_name: str | None = DENSE) -> StoreSchema:
    dense_size = options.dense_size
    if dense_size is None and dense is not None:
        dense_size = len(dense.embed_query(_DENSE_PROBE))
    muvera = creation_params(options.muvera)
    return StoreSchema(
        model=_model_name(encoder),
        model_identity=model_identity(encoder),
        model_dim=encoder.dim,
        vector_size=check_vector_size(options.vector_size, encoder.dim),
        datatype=options.datatype or options.default_datatype,
        quantization=options.quantization,
        bm25=options.bm25,
        bm25_language=options.bm25_language,
        dense_name=dense_name if dense_size is not None else None,
        dense_size=dense_size,
        pool_factor=encoder.pool_factor,
        muvera=None if muvera is None else muvera.to_dict(),
    )


def _load(model: ColBERT | str | os.PathLike[str] | None, model_kwargs: Mapping[str, Any]) -> ColBERT:
    if isinstance(model, ColBERT):
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise InvalidTypeError(f"model is a ColBERT, a hub id or a folder; got {type(model).__name__}.")
    return ColBERT.from_pretrained(model, **model_kwargs)


def _model_name(encoder: ColBERT) -> str:
    """Local folders are recorded as absolute paths so the store reopens from any working directory."""
    folder = Path(encoder.name)
    return str(folder.resolve()) if folder.is_dir() else encoder.name


def _check_unchanged(schema: StoreSchema, options: StoreOptions, where: str) -> None:
    asked = {
        "datatype": options.datatype,
        "quantization": options.quantization,
        "vector_size": options.vector_size,
        "dense_size": options.dense_size,
    }
    for name, value in asked.items():
        if value is not None and value != getattr(schema, name):
            raise StoreError(
                f"{where} was created with {name}={getattr(schema, name)!r}; it cannot be reopened with "
                f"{name}={value!r}. Index into a new store to change it."
            )
