"""Request and response bodies of the HTTP service.

The rerank bodies follow the common rerank APIs (Cohere, Jina, Text Embeddings Inference) so their
clients work against this service by changing the base URL; fields those APIs define and this service
does not use are accepted and ignored rather than refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    k: int = Field(default=10, ge=1, description="Number of hits.")
    prefetch_k: int = Field(default=100, ge=1, description="First-stage candidates reranked by MaxSim.")
    first_stage: Literal["bm25", "dense", "hybrid"] | None = Field(
        default=None, description="bm25 (default when the store has it), dense, or both fused (hybrid)."
    )
    filter: dict[str, Any] | None = Field(
        default=None, description='Metadata filter, e.g. {"lang": "en", "year": {"gte": 2020}}.'
    )
    dense_vector: list[float] | None = Field(
        default=None, description="The query's dense vector, for a dense or hybrid first stage."
    )


class SearchHit(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    model: str
    hits: list[SearchHit]


class NewDocument(BaseModel):
    text: str
    id: str | int | None = Field(default=None, description="Your id; a UUIDv5 of the text when absent.")
    metadata: dict[str, Any] | None = None


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
    ids: list[str | int]


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
