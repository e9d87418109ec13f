"""EdgeColbertRetriever: LlamaIndex nodes from one edgecolbert store query (first stage, then MaxSim)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import MetadataFilters

from edgecolbert import DEFAULT_TOP_K, InvalidInputError, InvalidTypeError, Result
from edgecolbert.store import BaseStore, FirstStageName, check_first_stage
from edgecolbert.store import MetadataFilter as StoreFilter
from llama_index.retrievers.edgecolbert.filters import to_store_filter

DEFAULT_PREFETCH_K = 100


class EdgeColbertRetriever(BaseRetriever):
    """Retrieves from an ``EdgeStore`` or ``QdrantStore``: the first stage proposes ``prefetch_k``
    candidates that pass ``filters``, MaxSim over their stored token vectors keeps the best
    ``similarity_top_k``. Each result is a ``TextNode`` with the stored id, text and metadata; its
    score is the raw MaxSim.

    ``first_stage`` is ``"bm25"``, ``"dense"`` or ``"hybrid"`` (None: the store's default, BM25 where
    it has it). ``filters`` is edgecolbert's filter form (``{"year": {"gte": 2020}}``) or LlamaIndex
    ``MetadataFilters`` using AND with ==, in, any, contains and range operators.
    """

    def __init__(
        self,
        store: BaseStore,
        similarity_top_k: int = DEFAULT_TOP_K,
        *,
        prefetch_k: int = DEFAULT_PREFETCH_K,
        first_stage: FirstStageName | None = None,
        filters: MetadataFilters | StoreFilter | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(store, BaseStore):
            raise InvalidTypeError(
                f"store must be an edgecolbert EdgeStore or QdrantStore; got {type(store).__name__}."
            )
        _check_positive("similarity_top_k", similarity_top_k)
        _check_positive("prefetch_k", prefetch_k)
        check_first_stage(first_stage)
        self._store = store
        self.similarity_top_k = similarity_top_k
        self.prefetch_k = prefetch_k
        self.first_stage = first_stage
        self.filters = to_store_filter(filters)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def store(self) -> BaseStore:
        return self._store

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._store.search(query_bundle.query_str, **self._search_options(query_bundle))
        return [_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self._store.asearch(query_bundle.query_str, **self._search_options(query_bundle))
        return [_node(hit) for hit in hits]

    def _search_options(self, query_bundle: QueryBundle) -> dict[str, Any]:
        return {
            "top_k": self.similarity_top_k,
            "prefetch_k": self.prefetch_k,
            "first_stage": self.first_stage,
            "filter": self.filters,
            "dense_vector": self._dense_vector(query_bundle),
        }

    def _dense_vector(self, query_bundle: QueryBundle) -> list[float] | None:
        """The bundle's own query embedding, only where the store has no dense model to embed the query."""
        if self._store.dense is not None or query_bundle.embedding is None:
            return None
        uses_dense = self.first_stage in ("dense", "hybrid") or (
            self.first_stage is None and not self._store.schema.bm25
        )
        return list(query_bundle.embedding) if uses_dense else None


def _node(hit: Result) -> NodeWithScore:
    return NodeWithScore(node=TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata)), score=hit.score)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer; got {value!r}.")
