"""EdgeColbertRerank: a LangChain document compressor that reorders documents by MaxSim."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from edgecolbert import DEFAULT_TOP_K, ColBERT, InvalidInputError, Reranker, StoreDocument
from edgecolbert.errors import MISSING, renamed_keyword
from edgecolbert.scoring import present
from edgecolbert.store import BaseStore
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, StrictBool, model_validator
from typing_extensions import Self

from langchain_edgecolbert.documents import check_documents, scored_copy, store_id

TopN = Annotated[int, Field(strict=True, ge=1)]


class _Configured:
    """Marks "use the compressor's own ``top_n``" in per-call overrides, where ``None`` means "all"."""

    def __repr__(self) -> str:
        return "CONFIGURED"


CONFIGURED: Any = _Configured()


class EdgeColbertRerank(BaseDocumentCompressor):
    """Reorders documents for a query by late-interaction MaxSim with an edgecolbert model.

    ``model`` is a hub id or folder (loaded with ``model_kwargs``), a loaded ``edgecolbert.ColBERT`` or a
    ready ``edgecolbert.Reranker``; unset, the store's model, else edgecolbert's default one. Documents
    come back as copies, best first, with the MaxSim score in ``metadata["relevance_score"]``; a score
    they already carried from the first stage is kept in ``metadata["first_stage_score"]``.

    With ``store`` (an ``EdgeStore`` or ``QdrantStore``), a document stored under its id (``Document.id``,
    else langchain-qdrant's ``metadata["_id"]``) with the same text is scored from its stored vectors
    instead of being encoded again; the others are encoded (``edgecolbert.Reranker.rerank`` with
    ``store=``). Both kinds end in one ranking, which is why the store and the reranker must use the
    same model.

    ``highlight=True`` also puts each returned document's best passages in ``metadata["highlights"]``
    (character ranges of ``page_content`` with their text); only the returned documents are explained.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: Reranker | ColBERT | str | Path | None = None
    """Hub id, folder, ``ColBERT`` or ``Reranker``; the store's model (else the default one) when unset.
    After construction, the ``Reranker`` in use."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``ColBERT.from_pretrained`` (``device``, ``document_length``, ...)."""
    store: BaseStore | None = None
    """A store whose vectors score the documents it holds, so they are not encoded again."""
    top_n: TopN | None = DEFAULT_TOP_K
    """How many documents to return; ``None`` returns them all, reordered."""
    highlight: StrictBool = False
    """Add each returned document's best passages to ``metadata["highlights"]`` (costs one more encoding each)."""
    model_name_or_path: Any = Field(default=MISSING, exclude=True, repr=False)
    """Deprecated: the former name of ``model``."""
    reranker: Any = Field(default=MISSING, exclude=True, repr=False)
    """Deprecated: give the ``Reranker`` as ``model``. Reading it returns the ``Reranker`` in use."""

    _ready: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _load_reranker(self) -> Self:
        if self._ready:
            # pydantic runs after-validators again when this object becomes a field of another model
            # (a RerankRetriever): the model is loaded and checked already.
            return self
        model = renamed_keyword("model_name_or_path", "model", self.model_name_or_path, self.model, None)
        model = renamed_keyword("reranker", "model", self.reranker, model, None)
        engine = Reranker.load(model, store=self.store, **self.model_kwargs)
        self.model = self.reranker = engine
        self.model_name_or_path = MISSING
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
        limit, documents = self._limit(top_n), check_documents(documents)
        results = self._reranker.rerank(
            query, _store_documents(documents), limit, store=self.store, highlight=self.highlight
        )
        return [scored_copy(documents[present(result.index, "index")], result) for result in results]

    async def arerank(
        self, documents: Sequence[Document], query: str, *, top_n: int | None = CONFIGURED
    ) -> list[Document]:
        """:meth:`rerank` with the model and the store working off the event loop."""
        limit, documents = self._limit(top_n), check_documents(documents)
        results = await self._reranker.arerank(
            query, _store_documents(documents), limit, store=self.store, highlight=self.highlight
        )
        return [scored_copy(documents[present(result.index, "index")], result) for result in results]

    @property
    def _reranker(self) -> Reranker:
        assert isinstance(self.model, Reranker)  # set by the validator
        return self.model

    def _limit(self, top_n: int | None) -> int | None:
        if top_n is CONFIGURED:
            return self.top_n
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InvalidInputError(f"top_n must be a positive integer (or None for all documents), got {top_n!r}.")
        return top_n


def _store_documents(documents: list[Document]) -> list[StoreDocument]:
    # Results map back to the caller's documents by position, so only the text and the store id go in.
    return [StoreDocument(text=document.page_content, id=store_id(document)) for document in documents]
