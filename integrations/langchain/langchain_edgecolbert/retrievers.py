"""Retrievers: search an edgecolbert store, or rerank any LangChain retriever's candidates."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

from edgecolbert import DEFAULT_TOP_K, ColBERT
from edgecolbert.scoring import check_query
from edgecolbert.store import DEFAULT_STORE_PATH, BaseStore, DenseEmbedder, EdgeStore, FirstStageName, parse_filter
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import Self

from langchain_edgecolbert.documents import hit_document
from langchain_edgecolbert.rerank import EdgeColbertRerank

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

PositiveInt = Annotated[int, Field(strict=True, ge=1)]


class SearchOptions(BaseModel):
    """What one store search asks for; the retriever's fields, overridable per call (``invoke(q, k=3)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: PositiveInt = DEFAULT_TOP_K
    prefetch_k: PositiveInt = 100
    first_stage: FirstStageName | None = None
    filter: dict[str, Any] | None = None

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        parse_filter(value)  # raises, naming the bad condition, on anything the stores would not accept
        return value

    def search_kwargs(self) -> dict[str, Any]:
        """The options as the store's ``search`` names them (LangChain's ``k`` is the store's ``top_k``)."""
        options = self.model_dump()
        return {"top_k": options.pop("k"), **options}

    @model_validator(mode="after")
    def _prefetch_covers_k(self) -> Self:
        if self.prefetch_k < self.k:
            raise ValueError(
                f"prefetch_k ({self.prefetch_k}) is smaller than k ({self.k}): the first stage must propose at "
                "least k candidates. Raise prefetch_k or lower k."
            )
        return self


class EdgeColbertRetriever(BaseRetriever):
    """Top ``k`` documents from an ``EdgeStore`` or ``QdrantStore``: a first stage proposes
    ``prefetch_k`` candidates (BM25, the store's dense vector, or both fused), MaxSim orders them.

    Documents carry the stored id, text and metadata, plus ``metadata["relevance_score"]`` (MaxSim).
    ``filter`` restricts the search with edgecolbert's filter form (``{"lang": "en"}``,
    ``{"year": {"gte": 2020}}``, ``{"tags": ["a", "b"]}``). Every option can also be given per call:
    ``retriever.invoke("query", k=10, filter={...})``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    store: BaseStore
    k: PositiveInt = DEFAULT_TOP_K
    prefetch_k: PositiveInt = 100
    first_stage: FirstStageName | None = None
    """``None``: BM25 when the store has it, else its dense vector."""
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_options(self) -> Self:
        self._options({})
        return self

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str] = DEFAULT_STORE_PATH,
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        dense: DenseEmbedder | None = None,
        **fields: Any,
    ) -> EdgeColbertRetriever:
        """Open (or create) the embedded store in ``path`` and search it; ``fields`` are the retriever's.

        The store keeps its folder locked until ``retriever.store.close()``.
        """
        return cls._over(EdgeStore(path, model, dense=dense), fields)

    @classmethod
    def from_qdrant(
        cls,
        collection: str,
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        dense: DenseEmbedder | None = None,
        **fields: Any,
    ) -> EdgeColbertRetriever:
        """Search a Qdrant collection (``url`` or ``QDRANT_URL``, or a ready ``client``)."""
        from edgecolbert.store import QdrantStore

        return cls._over(QdrantStore(collection, model, client=client, url=url, api_key=api_key, dense=dense), fields)

    @classmethod
    def _over(cls, store: BaseStore, fields: dict[str, Any]) -> EdgeColbertRetriever:
        try:
            return cls(store=store, **fields)
        except Exception:
            store.close()  # a store opened for a retriever that cannot be built must not keep its lock
            raise

    def _options(self, overrides: dict[str, Any]) -> SearchOptions:
        defaults = {"k": self.k, "prefetch_k": self.prefetch_k, "first_stage": self.first_stage, "filter": self.filter}
        return SearchOptions(**{**defaults, **overrides})

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        return [hit_document(hit) for hit in self.store.search(query, **self._options(overrides).search_kwargs())]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        hits = await self.store.asearch(query, **self._options(overrides).search_kwargs())
        return [hit_document(hit) for hit in hits]


class RerankRetriever(BaseRetriever):
    """Any LangChain retriever as the first stage, reordered by an :class:`EdgeColbertRerank`.

    The first stage's documents come back as copies, best first by MaxSim, with the first stage's own
    score (when it gave one) in ``metadata["first_stage_score"]``. ``k`` (also per call:
    ``invoke(q, k=5)``) sets how many to return; unset, the reranker's ``top_n`` decides.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    base_retriever: BaseRetriever
    reranker: EdgeColbertRerank
    k: PositiveInt | None = None

    def _top_n(self, overrides: dict[str, Any]) -> int | None:
        k = _RerankOptions(**{"k": self.k, **overrides}).k
        return self.reranker.top_n if k is None else k

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        top_n = self._top_n(overrides)
        check_query(query)  # before the first stage spends any work on a query that cannot be reranked
        candidates = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
        return self.reranker.rerank(candidates, query, top_n=top_n)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        top_n = self._top_n(overrides)
        check_query(query)
        candidates = await self.base_retriever.ainvoke(query, config={"callbacks": run_manager.get_child()})
        return await self.reranker.arerank(candidates, query, top_n=top_n)


class _RerankOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    k: PositiveInt | None = None
