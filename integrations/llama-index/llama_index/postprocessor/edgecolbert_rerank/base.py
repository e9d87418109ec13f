"""EdgeColbertRerank: reorder LlamaIndex nodes by MaxSim, from stored token vectors where a store has them."""

from __future__ import annotations

import asyncio
import os
from typing import Any, TypeVar

from edgecolbert import DEFAULT_TOP_K, ColBERT, InvalidInputError, InvalidTypeError, Reranker, StoreDocument
from edgecolbert.errors import MISSING, renamed_keyword
from edgecolbert.scoring import TextHighlights, highlight_texts, present
from edgecolbert.store import BaseStore
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

dispatcher = get_dispatcher(__name__)

BaseNodeT = TypeVar("BaseNodeT", bound=BaseNode)

FIRST_STAGE_SCORE_KEY = "first_stage_score"
"""Metadata key under which a reranked node keeps the score its first stage gave it."""

HIGHLIGHTS_KEY = "highlights"
"""Metadata key of a node's best passages when highlights were asked for (``highlight=True``): a list of
``{"start", "end", "score", "text", "spans"}``, best first, where ``node.text[start:end] == text``."""


class EdgeColbertRerank(BaseNodePostprocessor):
    """Reorders nodes by MaxSim between the query's and each node's token vectors, best first.

    ``model`` is a hub id or folder, a loaded ``edgecolbert.ColBERT`` or a ready ``edgecolbert.Reranker``
    (unset: the store's model, else edgecolbert's default). ``score`` becomes the raw MaxSim; the node's
    previous score is kept in a copy of its metadata under ``first_stage_score`` (hidden from embedding and
    LLM prompts). The caller's nodes are left as they were.

    With ``store=``, nodes whose ``node_id`` is stored there with the same text are scored from their
    stored vectors, without encoding them again; other nodes are encoded once (and cached by content),
    all by ``edgecolbert.Reranker.rerank(..., store=...)``. Nodes are then compared and encoded by their
    text alone (``MetadataMode.NONE``), as the store encoded its documents, so both kinds of score share
    one scale; without a store ``metadata_mode`` decides what is encoded.

    ``highlight=True`` also puts each returned node's best passages in a copy of its metadata under
    ``highlights`` (character ranges of the node's own text, hidden from embedding and LLM prompts);
    only the returned nodes are explained, each encoded once more.
    """

    model: str = Field(description="Checkpoint that encodes queries and nodes (hub id or folder).")
    top_n: int | None = Field(default=DEFAULT_TOP_K, description="Nodes to keep, best first (None: all).")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata goes into a node's text when it is encoded."
    )
    highlight: bool = Field(default=False, strict=True, description="Put each node's best passages in its metadata.")
    _reranker: Reranker = PrivateAttr()
    _store: BaseStore | None = PrivateAttr(default=None)

    def __init__(
        self,
        top_n: int | None = DEFAULT_TOP_K,
        model: Reranker | ColBERT | str | os.PathLike[str] | None = None,
        *,
        store: BaseStore | None = None,
        reranker: Any = MISSING,
        device: str | None = None,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        highlight: bool = False,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        _check_top_n(top_n)
        if store is not None and not isinstance(store, BaseStore):
            raise InvalidTypeError(
                f"store must be an edgecolbert EdgeStore or QdrantStore; got {type(store).__name__}."
            )
        model = renamed_keyword("reranker", "model", reranker, model, None)
        engine = Reranker.load(model, store=store, **({} if device is None else {"device": device}))
        super().__init__(
            model=engine.model.name,
            top_n=top_n,
            metadata_mode=metadata_mode,
            highlight=highlight,
            callback_manager=callback_manager or CallbackManager(),
        )
        self._reranker = engine
        self._store = store

    @classmethod
    def class_name(cls) -> str:
        return "EdgeColbertRerank"

    @property
    def reranker(self) -> Reranker:
        return self._reranker

    @property
    def store(self) -> BaseStore | None:
        return self._store

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = _query_text(query_bundle)
        top_n = len(nodes) if self.top_n is None else self.top_n
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=self.model))
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            ranked = self._rank(query, nodes, top_n) if nodes else []
            event.on_end(payload={EventPayload.NODES: ranked})
        dispatcher.event(ReRankEndEvent(nodes=ranked))
        return ranked

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        # Encoding and the store query are CPU and I/O work: a worker thread keeps the event loop serving.
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)

    def _rank(self, query: str, nodes: list[NodeWithScore], top_n: int) -> list[NodeWithScore]:
        mode = self.metadata_mode if self._store is None else MetadataMode.NONE
        documents = [StoreDocument(text=n.node.get_content(metadata_mode=mode), id=n.node.node_id) for n in nodes]
        results = self._reranker.rerank(query, documents, top_n, store=self._store)
        ranked = [nodes[present(result.index, "index")] for result in results]
        return [
            _rescored(node, result.score, shown)
            for node, result, shown in zip(ranked, results, self._highlights(query, ranked))
        ]

    def _highlights(self, query: str, nodes: list[NodeWithScore]) -> list[TextHighlights | None]:
        if not self.highlight:
            return [None] * len(nodes)
        # The node's own text, not the metadata-prefixed one encoded under metadata_mode: the ranges must
        # index node.text.
        texts = [node.node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes]
        return list(highlight_texts(self._reranker.model, query, texts))


def _check_top_n(top_n: object) -> None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidInputError(f"top_n must be a positive integer (or None to keep every node); got {top_n!r}.")


def _query_text(query_bundle: QueryBundle | None) -> str:
    if query_bundle is None:
        raise InvalidInputError(
            "EdgeColbertRerank needs a query: call postprocess_nodes(nodes, query_str=...) or use it in a query engine."
        )
    return query_bundle.query_str


def _rescored(original: NodeWithScore, score: float, highlights: TextHighlights | None) -> NodeWithScore:
    """A new NodeWithScore over a copy of the node, so the caller's objects keep their scores and metadata."""
    extra = highlighted_metadata(highlights)
    if original.score is not None:
        extra[FIRST_STAGE_SCORE_KEY] = original.score
    return NodeWithScore(node=with_hidden_metadata(original.node, extra), score=score)


def highlighted_metadata(highlights: TextHighlights | None) -> dict[str, Any]:
    """The metadata entry for a node's passages; none when highlights were not asked for."""
    return {} if highlights is None else {HIGHLIGHTS_KEY: highlights.to_dict()["passages"]}


def with_hidden_metadata(node: BaseNodeT, extra: dict[str, Any]) -> BaseNodeT:
    """A copy of ``node`` with ``extra`` in its metadata, kept out of what gets embedded or shown to the LLM:
    scores and highlights are bookkeeping about the node, not part of it."""
    if not extra:
        return node.model_copy()
    update: dict[str, Any] = {
        "metadata": {**node.metadata, **extra},
        "excluded_embed_metadata_keys": _with(node.excluded_embed_metadata_keys, extra),
        "excluded_llm_metadata_keys": _with(node.excluded_llm_metadata_keys, extra),
    }
    return node.model_copy(update=update)


def _with(keys: list[str], added: dict[str, Any]) -> list[str]:
    return [*keys, *(key for key in added if key not in keys)]
