"""EdgeColbertRerank: reorder LlamaIndex nodes by MaxSim, from stored token vectors where a store has them."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

from edgecolbert import ColBERT, InvalidInputError, InvalidTypeError, Reranker
from edgecolbert.store import BaseStore
from edgecolbert.store.schema import check_model
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

FIRST_STAGE_SCORE_KEY = "first_stage_score"
"""Metadata key under which a reranked node keeps the score its first stage gave it."""

DEFAULT_TOP_N = 2  # as SentenceTransformerRerank


class EdgeColbertRerank(BaseNodePostprocessor):
    """Reorders nodes by MaxSim between the query's and each node's token vectors, best first.

    ``score`` becomes the raw MaxSim; the node's previous score is kept in a copy of its metadata
    under ``first_stage_score`` (hidden from embedding and LLM prompts). The caller's nodes are left
    as they were. With ``store=``, nodes whose ``node_id`` (else ``ref_doc_id``) is stored there with
    the same text are scored from their stored vectors, without encoding them again; other nodes are
    encoded once (and cached by content).
    """

    model: str = Field(description="Checkpoint that encodes queries and nodes (hub id or folder).")
    top_n: int | None = Field(default=DEFAULT_TOP_N, description="Nodes to keep, best first (None: all).")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata goes into a node's text when it is encoded."
    )
    _reranker: Reranker = PrivateAttr()
    _store: BaseStore | None = PrivateAttr(default=None)

    def __init__(
        self,
        top_n: int | None = DEFAULT_TOP_N,
        model: ColBERT | str | os.PathLike[str] | None = None,
        *,
        reranker: Reranker | None = None,
        store: BaseStore | None = None,
        device: str | None = None,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        _check_top_n(top_n)
        if store is not None and not isinstance(store, BaseStore):
            raise InvalidTypeError(
                f"store must be an edgecolbert EdgeStore or QdrantStore; got {type(store).__name__}."
            )
        engine = _reranker(model, reranker, store, device)
        if store is not None and engine.model is not store.model:
            check_model(store.schema, engine.model, store.where)
        super().__init__(
            model=engine.model.name,
            top_n=top_n,
            metadata_mode=metadata_mode,
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
        payload = {
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
        scores = self._scores(query, nodes)
        # A stable sort: ties keep the first stage's order.
        order = sorted(range(len(nodes)), key=lambda position: -scores[position])[:top_n]
        return [_rescored(nodes[position], scores[position]) for position in order]

    def _scores(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        scores = self._stored_scores(query, nodes)
        missing = [position for position in range(len(nodes)) if position not in scores]
        if missing:
            texts = [nodes[position].node.get_content(metadata_mode=self.metadata_mode) for position in missing]
            for result in self._reranker.rerank(query, texts):
                scores[missing[result.index]] = result.score
        logger.debug("Reranked %d nodes, %d from stored vectors.", len(nodes), len(nodes) - len(missing))
        return [scores[position] for position in range(len(nodes))]

    def _stored_scores(self, query: str, nodes: Sequence[NodeWithScore]) -> dict[int, float]:
        """MaxSim of the nodes the store holds with the same text, by position; one engine query."""
        if self._store is None:
            return {}
        keys = [_stored_keys(node.node) for node in nodes]
        found = {hit.id: hit.text for hit in self._store.get(list(dict.fromkeys(k for ks in keys for k in ks)))}
        chosen: dict[int, str] = {}
        for position, (node, node_keys) in enumerate(zip(nodes, keys)):
            text = node.node.get_content(metadata_mode=MetadataMode.NONE)
            # A stored point with other text (a stale copy, or the whole source of a chunk) would score
            # something else than this node: only an exact match is reused.
            match = next((key for key in node_keys if found.get(key) == text), None)
            if match is not None:
                chosen[position] = match
        if not chosen:
            return {}
        stored = {hit.id: hit.score for hit in self._store.rerank(query, list(dict.fromkeys(chosen.values())))}
        return {position: stored[key] for position, key in chosen.items()}


def _reranker(
    model: ColBERT | str | os.PathLike[str] | None,
    reranker: Reranker | None,
    store: BaseStore | None,
    device: str | None,
) -> Reranker:
    if reranker is not None:
        if model is not None:
            raise InvalidInputError("Give model= or reranker=, not both: the reranker already holds its model.")
        if not isinstance(reranker, Reranker):
            raise InvalidTypeError(f"reranker must be an edgecolbert.Reranker; got {type(reranker).__name__}.")
        return reranker
    if model is None and store is not None:
        return Reranker(store.model)
    if isinstance(model, ColBERT):
        return Reranker(model)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise InvalidTypeError(f"model is a hub id, a folder or an edgecolbert.ColBERT; got {type(model).__name__}.")
    return Reranker.from_pretrained(model, **({} if device is None else {"device": device}))


def _check_top_n(top_n: object) -> None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidInputError(f"top_n must be a positive integer (or None to keep every node); got {top_n!r}.")


def _query_text(query_bundle: QueryBundle | None) -> str:
    if query_bundle is None:
        raise InvalidInputError(
            "EdgeColbertRerank needs a query: call postprocess_nodes(nodes, query_str=...) or use it in a query engine."
        )
    return query_bundle.query_str


def _stored_keys(node: BaseNode) -> list[str]:
    return list(dict.fromkeys(key for key in (node.node_id, node.ref_doc_id) if key))


def _rescored(original: NodeWithScore, score: float) -> NodeWithScore:
    """A new NodeWithScore over a copy of the node, so the caller's objects keep their scores and metadata."""
    node = original.node
    if original.score is None:
        return NodeWithScore(node=node.model_copy(), score=score)
    update: dict[str, Any] = {
        "metadata": {**node.metadata, FIRST_STAGE_SCORE_KEY: original.score},
        # The kept score is bookkeeping: it must not change what gets embedded or shown to the LLM.
        "excluded_embed_metadata_keys": _with(node.excluded_embed_metadata_keys, FIRST_STAGE_SCORE_KEY),
        "excluded_llm_metadata_keys": _with(node.excluded_llm_metadata_keys, FIRST_STAGE_SCORE_KEY),
    }
    return NodeWithScore(node=node.model_copy(update=update), score=score)


def _with(keys: list[str], key: str) -> list[str]:
    return list(keys) if key in keys else [*keys, key]
