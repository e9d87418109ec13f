"""Request and response bodies of the HTTP service.

The rerank bodies follow the common rerank APIs (Cohere, Jina, Text Embeddings Inference) so their
clients work against this service by changing the base URL; fields those APIs define and this service
does not use are accepted and ignored rather than refused.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field

from edgecolbert.store.base import FirstStageName

# Stores keep integers as signed 64-bit (Qdrant payloads) and nest JSON only so deep.
_INT64 = (-(2**63), 2**63 - 1)
_MAX_DEPTH = 32
# A metadata field, or a dotted path into nested fields, as the stores' filters address them.
_FIELD_PATH = re.compile(r"\w[\w-]*(?:\[\d*\])?(?:\.\w[\w-]*(?:\[\d*\])?)*")


def _check_json(value: Any, where: str, *, int_range: bool = True, depth: int = 0) -> None:
    """Refuse what JSON parsers let through but no store can keep: lone surrogates, deep nesting, NaN,
    infinities and, with ``int_range``, integers beyond 64 bits."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where} nests deeper than {_MAX_DEPTH} levels.")
    if isinstance(value, str):
        _check_text(value, where)
    else:
        _check_number(value, where, int_range=int_range)
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.strip():
                raise ValueError(f"{where} has an empty key.")
            _check_text(key, f"a key of {where}")
            _check_json(item, f"{where}[{key!r}]", int_range=int_range, depth=depth + 1)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _check_json(item, f"{where}[{position}]", int_range=int_range, depth=depth + 1)


def _check_number(value: Any, where: str, *, int_range: bool) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds {value}; only finite numbers can be stored or compared.")
    if not int_range or isinstance(value, bool) or not isinstance(value, int):
        return
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{where} holds {value}, outside the 64-bit integer range the stores keep.")


def _check_text(text: str, where: str) -> str:
    # JSON can carry lone surrogates ("\ud800"), which no store can encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where} is not valid Unicode ({exc.reason} at {exc.start}).") from exc
    return text


def _checked_id(value: str) -> str:
    return _check_text(value, "id")


def _checked_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        _check_json(value, "metadata")
    return value


def _checked_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return value
    for key in value:
        if not _FIELD_PATH.fullmatch(key):
            raise ValueError(
                f"filter key {key!r} is not a metadata field name: use letters, digits, '_' and '-', "
                "with '.' between the parts of a nested field."
            )
    # Integer ranges are the store's to judge: its filter parser names the field and the limit.
    _check_json(value, "filter", int_range=False)
    return value


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Metadata = Annotated[dict[str, Any] | None, AfterValidator(_checked_metadata)]
Filter = Annotated[dict[str, Any] | None, AfterValidator(_checked_filter)]
Id = (
    Annotated[str, Field(min_length=1), AfterValidator(_checked_id)] | Annotated[int, Field(ge=_INT64[0], le=_INT64[1])]
)


class TextDocument(BaseModel):
    """A document given as an object, as Jina and Cohere v1 allow; only ``text`` is read."""

    model_config = ConfigDict(extra="allow")

    text: str


class RerankRequest(BaseModel):
    """Cohere / Jina shaped: ``query``, ``documents``, ``top_n``, ``return_documents``, ``model``."""

    query: str = Field(description="The query to rank the documents against.")
    documents: list[str | TextDocument] = Field(
        description="Candidate texts, as strings or objects with a 'text' field."
    )
    top_n: int | None = Field(default=None, ge=1, description="Keep the best n results (all when absent).")
    return_documents: bool = Field(default=False, description="Include each document's text in its result.")
    model: str | None = Field(
        default=None, description="Accepted for client compatibility; the service answers with the model it serves."
    )
    max_tokens_per_doc: int | None = Field(
        default=None, description="Accepted for Cohere v2 compatibility and ignored: the model's length applies."
    )
    rank_fields: list[str] | None = Field(default=None, description="Accepted for Cohere v1 compatibility and ignored.")


class ResultDocument(BaseModel):
    text: str


class RerankResultItem(BaseModel):
    index: int = Field(description="Position of the document in the request.")
    relevance_score: float = Field(description="MaxSim of the query and the document (raw, unbounded).")
    normalized_score: float = Field(description="MaxSim divided by the query's vector count, in [-1, 1].")
    document: ResultDocument | None = Field(default=None, description="Present when return_documents is true.")


class RerankResponse(BaseModel):
    id: str = Field(description="A fresh identifier of this response, as Cohere returns.")
    model: str
    results: list[RerankResultItem] = Field(description="Best first.")


class TeiRerankRequest(BaseModel):
    """Text Embeddings Inference's ``/rerank`` body."""

    query: str
    texts: list[str]
    return_text: bool = False
    raw_scores: bool = Field(
        default=False, description="true: raw MaxSim; false: MaxSim divided by the query's vector count, in [-1, 1]."
    )
    truncate: bool | None = Field(default=None, description="Accepted and ignored: long texts are always truncated.")
    truncation_direction: str | None = Field(default=None, description="Accepted and ignored.")


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class SearchRequest(BaseModel):
    query: str
    top_k: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("top_k", "k"),
        description="Number of hits ('k' is accepted as its former name).",
    )
    prefetch_k: int = Field(default=100, ge=1, description="First-stage candidates reranked by MaxSim.")
    first_stage: FirstStageName | None = Field(
        default=None, description="bm25 (default when the store has it), dense, or both fused (hybrid)."
    )
    filter: Filter = Field(default=None, description='Metadata filter, e.g. {"lang": "en", "year": {"gte": 2020}}.')
    dense_vector: list[FiniteFloat] | None = Field(
        default=None, description="The query's dense vector, for a dense or hybrid first stage."
    )


class SearchHit(BaseModel):
    id: str
    score: float
    normalized_score: float = Field(description="MaxSim divided by the query's vector count, in [-1, 1].")
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    model: str
    hits: list[SearchHit]


class NewDocument(BaseModel):
    text: str
    id: Id | None = Field(default=None, description="Your id; a UUIDv5 of the text when absent.")
    metadata: Metadata = None


class AddDocumentsRequest(BaseModel):
    documents: list[NewDocument]


class AddDocumentsResponse(BaseModel):
    ids: list[str] = Field(description="The stored id of each document, in request order.")
    added: int
    reencoded: int
    metadata_updated: int
    unchanged: int
    truncated: int = Field(description="Documents longer than the model's document length, truncated when encoded.")
    count: int = Field(description="Documents in the store after the write.")


class DeleteDocumentsRequest(BaseModel):
    ids: list[Id]


class DeleteDocumentsResponse(BaseModel):
    requested: int = Field(description="Distinct ids asked for; ids that were not stored are ignored.")
    count: int = Field(description="Documents in the store after the delete.")


class StoreStatus(BaseModel):
    kind: str
    count: int


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model: str | None = Field(default=None, description="Shown to authorised callers (or when no key is set).")
    store: StoreStatus | None = Field(default=None, description="Absent without a store or without authorisation.")


class ErrorResponse(BaseModel):
    detail: str
