"""EdgeColbertRerank: a LangChain document compressor that reorders documents by MaxSim."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from edgecolbert import InvalidInputError, Reranker, RerankResults
from edgecolbert.scoring.reranker import check_query
from edgecolbert.store import BaseStore, Hit
from edgecolbert.store.schema import check_model, point_id
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, model_validator
from typing_extensions import Self

from langchain_edgecolbert.documents import check_documents, scored_copy, store_id

logger = logging.getLogger(__name__)

TopN = Annotated[int, Field(strict=True, ge=1)]


class _Configured:
    """Marks "use the compressor's own ``top_n``" in per-call overrides, where ``None`` means "all"."""

    def __repr__(self) -> str:
        return "CONFIGURED"


CONFIGURED: Any = _Configured()


class EdgeColbertRerank(BaseDocumentCompressor):
    """Reorders documents for a query by late-interaction MaxSim with an edgecolbert model.

    Give a model (``model_name_or_path``: hub id or folder; edgecolbert's default model when neither
    it nor ``reranker`` is set) or a ready ``edgecolbert.Reranker``. Documents come back as copies,
    best first, with the MaxSim score in ``metadata["relevance_score"]``; a score they already
    carried from the first stage is kept in ``metadata["first_stage_score"]``.

    With ``store`` (an ``EdgeStore`` or ``QdrantStore``), a document whose id (``Document.id``, else
    ``metadata["id"]``, ``["doc_id"]`` or langchain-qdrant's ``["_id"]``) is stored with the same
    text is scored from its stored vectors instead of being encoded again; the others are encoded.
    Both kinds end in one ranking, which is why the store and the reranker must use the same model.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model_name_or_path: str | Path | None = None
    """Hub id or local folder of the checkpoint; edgecolbert's default model when unset."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``ColBERT.from_pretrained`` (``device``, ``document_length``, ...)."""
    reranker: Reranker | None = None
    """A ready reranker, instead of ``model_name_or_path``."""
    store: BaseStore | None = None
    """A store whose vectors score the documents it holds, so they are not encoded again."""
    top_n: TopN | None = 3
    """How many documents to return; ``None`` returns them all, reordered."""

    _ready: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _load_reranker(self) -> Self:
        if self._ready:
            # pydantic runs after-validators again when this object becomes a field of another model
            # (a RerankRetriever): the model is loaded and checked already.
            return self
        if self.reranker is not None and (self.model_name_or_path is not None or self.model_kwargs):
            raise ValueError("Give either reranker= or model_name_or_path= (with model_kwargs=), not both.")
        if self.reranker is None:
            if self.model_name_or_path is None and not self.model_kwargs and self.store is not None:
                # The store's own model: its scores and the encoded documents' share one scale.
                self.reranker = Reranker(self.store.model)
            else:
                self.reranker = Reranker.from_pretrained(self.model_name_or_path, **self.model_kwargs)
        if self.store is not None:
            check_model(self.store.schema, self.reranker.model, self.store.where)
        self._ready = True
        return self

    # ---- LangChain's interface ---------------------------------------------------------------

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The best ``top_n`` documents for ``query``, reordered by MaxSim (copies)."""
        return self.rerank(documents, query)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """:meth:`compress_documents` without blocking the event loop."""
        return await self.arerank(documents, query)

    # ---- the work ----------------------------------------------------------------------------

    def rerank(self, documents: Sequence[Document], query: str, *, top_n: int | None = CONFIGURED) -> list[Document]:
        """Reorder ``documents`` for ``query``; ``top_n`` overrides the configured count (``None``: all)."""
        limit, documents = self._limit(top_n), self._prepare(documents, query)
        if not documents:
            return []
        plan = _Plan(documents)
        if self.store is not None and plan.candidate_ids:
            plan.keep_stored(self.store.get(plan.candidate_ids))
        stored = self.store.rerank(query, plan.stored_ids) if self.store is not None and plan.stored_ids else []
        encoded = self._reranker.rerank(query, plan.encoded_texts, top_k=limit) if plan.encoded_texts else None
        return plan.ranking(stored, encoded, limit)

    async def arerank(
        self, documents: Sequence[Document], query: str, *, top_n: int | None = CONFIGURED
    ) -> list[Document]:
        """:meth:`rerank` with the model and the store working off the event loop."""
        limit, documents = self._limit(top_n), self._prepare(documents, query)
        if not documents:
            return []
        plan = _Plan(documents)
        if self.store is not None and plan.candidate_ids:
            plan.keep_stored(await self.store.aget(plan.candidate_ids))
        stored, encoded = await asyncio.gather(
            self.store.arerank(query, plan.stored_ids) if self.store is not None and plan.stored_ids else _nothing([]),
            self._reranker.arerank(query, plan.encoded_texts, top_k=limit) if plan.encoded_texts else _nothing(None),
        )
        return plan.ranking(stored, encoded, limit)

    @property
    def _reranker(self) -> Reranker:
        assert self.reranker is not None  # set by the validator
        return self.reranker

    def _limit(self, top_n: int | None) -> int | None:
        if top_n is CONFIGURED:
            return self.top_n
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InvalidInputError(f"top_n must be a positive integer (or None for all documents), got {top_n!r}.")
        return top_n

    @staticmethod
    def _prepare(documents: Sequence[Document], query: str) -> list[Document]:
        check_query(query)
        return check_documents(documents)


async def _nothing(value: Any) -> Any:
    return value


@dataclass
class _Plan:
    """Which documents are scored from the store, which are encoded, and how the scores merge."""

    documents: list[Document]

    def __post_init__(self) -> None:
        self._ids = {position: doc_id for position, doc in enumerate(self.documents) if (doc_id := store_id(doc))}
        self._stored: dict[int, str] = {}

    @property
    def candidate_ids(self) -> list[str]:
        return list(dict.fromkeys(self._ids.values()))

    def keep_stored(self, hits: Sequence[Hit]) -> None:
        """Score from the store only documents stored with the text they have here: an id that names
        another text (a modified chunk, an unrelated ``metadata['id']``) must not borrow its vectors."""
        texts = {point_id(hit.id): hit.text for hit in hits}
        self._stored = {
            position: doc_id
            for position, doc_id in self._ids.items()
            if texts.get(point_id(doc_id)) == self.documents[position].page_content
        }
        if len(self._stored) < len(self._ids):
            logger.debug(
                "%d of %d documents with ids are not stored with this text; they are encoded.",
                len(self._ids) - len(self._stored),
                len(self._ids),
            )

    @property
    def stored_ids(self) -> list[str]:
        return list(dict.fromkeys(self._stored.values()))

    @property
    def _encoded_positions(self) -> list[int]:
        return [position for position in range(len(self.documents)) if position not in self._stored]

    @property
    def encoded_texts(self) -> list[str]:
        return [self.documents[position].page_content for position in self._encoded_positions]

    def ranking(self, stored: Sequence[Hit], encoded: RerankResults | None, limit: int | None) -> list[Document]:
        """One ranking of both kinds, best first; each kind keeps its own order among equal scores."""
        scored: list[tuple[int, float]] = []
        if encoded is not None:
            positions = self._encoded_positions
            scored.extend((positions[result.index], result.score) for result in encoded)
        positions_by_point: dict[int | str, list[int]] = defaultdict(list)
        for position, doc_id in self._stored.items():
            positions_by_point[point_id(doc_id)].append(position)
        scored.extend((position, hit.score) for hit in stored for position in positions_by_point[point_id(hit.id)])
        scored.sort(key=lambda item: -item[1])
        return [scored_copy(self.documents[position], score) for position, score in scored[:limit]]
