"""Between LangChain ``Document`` objects and edgecolbert's texts, ids and hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgecolbert import InvalidDocumentError, InvalidTypeError, Result
from langchain_core.documents import Document

SCORE_KEY = "relevance_score"
"""Metadata key of the late-interaction (MaxSim) score on every document this package returns."""

FIRST_STAGE_SCORE_KEY = "first_stage_score"
"""Metadata key under which a reranked document keeps the score its first stage gave it."""

# Keys a first stage commonly leaves its score under; the first one found is kept.
_FIRST_STAGE_KEYS = (SCORE_KEY, "score")
# Where langchain-qdrant puts the point id of the documents it returns. A user's own metadata keys ("id",
# "doc_id") are never read as store ids: they name the user's documents, not the store's points.
QDRANT_ID_KEY = "_id"


def check_documents(documents: Sequence[Document]) -> list[Document]:
    """The documents as a list, refusing anything that is not a ``Document`` (named by position)."""
    if isinstance(documents, (str, Document)):
        raise InvalidTypeError("documents must be a list of Document objects; wrap a single one in a list.")
    checked = list(documents)
    for position, document in enumerate(checked):
        if not isinstance(document, Document):
            raise InvalidDocumentError(
                f"documents[{position}] is a {type(document).__name__}, not a langchain_core Document."
            )
    return checked


def store_id(document: Document) -> str | None:
    """The id a store gave the document: ``Document.id`` (set by edgecolbert's retrievers and most vector
    stores), else ``metadata['_id']`` (where langchain-qdrant puts the point id)."""
    for value in (document.id, document.metadata.get(QDRANT_ID_KEY)):
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return str(value)
        if isinstance(value, str) and value.strip():
            return value
    return None


def scored_copy(document: Document, score: float) -> Document:
    """A copy carrying ``score`` as its relevance score; the caller's document is left as it was.

    A score the document arrived with is the first stage's: it moves to ``first_stage_score`` unless
    an earlier rerank already put one there, so the original first-stage score survives chained reranks.
    """
    metadata: dict[str, Any] = dict(document.metadata)
    if FIRST_STAGE_SCORE_KEY not in metadata:
        previous = next((metadata[key] for key in _FIRST_STAGE_KEYS if key in metadata), None)
        if previous is not None:
            metadata[FIRST_STAGE_SCORE_KEY] = previous
    metadata[SCORE_KEY] = score
    return document.model_copy(update={"metadata": metadata})


def hit_document(hit: Result) -> Document:
    """A stored document found by a search, as LangChain expects it."""
    return Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, SCORE_KEY: hit.score})
