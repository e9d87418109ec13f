"""EdgeColbertRerank: LlamaIndex nodes ordered exactly as edgecolbert's Reranker and stores order them."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkpoints import requires_minilm
from edgecolbert import DEFAULT_TOP_K, ColBERT, EmptyQueryError, InvalidInputError, InvalidTypeError, Reranker
from edgecolbert.errors import ModelMismatchError
from edgecolbert.store import EdgeStore
from store_fixtures import assert_metadata_highlights, corpus

pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (the test extra has it)")

try:
    import llama_index.postprocessor.edgecolbert_rerank  # noqa: F401
except ImportError:  # not pip-installed: test the integration from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from llama_index.postprocessor.edgecolbert_rerank import FIRST_STAGE_SCORE_KEY, HIGHLIGHTS_KEY, EdgeColbertRerank

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer

QUERY = "cats and rivers in year 12"


def _nodes(n: int = 24) -> list[NodeWithScore]:
    texts, ids, metadatas = corpus(n)
    return [
        NodeWithScore(node=TextNode(id_=doc_id, text=text, metadata={"topic": meta["topic"]}), score=1.0 / (i + 1))
        for i, (text, doc_id, meta) in enumerate(zip(texts, ids, metadatas))
    ]


class EventRecorder(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[EventRecorder]:
    handler = EventRecorder()
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


class EncodeSpy:
    """Every text any ColBERT encodes as a document while the spy is installed."""

    def __init__(self) -> None:
        self.encoded: list[str] = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> EncodeSpy:
    recorded = EncodeSpy()
    real = ColBERT.encode_documents

    def encode_documents(encoder: ColBERT, texts: Any, **kwargs: Any) -> Any:
        recorded.encoded.extend(texts)
        return real(encoder, texts, **kwargs)

    monkeypatch.setattr(ColBERT, "encode_documents", encode_documents)
    return recorded


@pytest.fixture
def store(tmp_path: Path, model: ColBERT) -> Iterator[EdgeStore]:
    texts, ids, metadatas = corpus(24)
    opened = EdgeStore(tmp_path / "store", model, datatype="float32")
    opened.add(texts, ids=ids, metadatas=metadatas)
    yield opened
    opened.close()


# ---- ordering and scores --------------------------------------------------------------------------


@pytest.mark.parametrize("query", [QUERY, "violins", "comets seen in year 3"])
def test_order_and_scores_equal_the_reranker(model: ColBERT, query: str) -> None:
    nodes = _nodes()
    # Metadata is part of what gets encoded, as in LlamaIndex's other rerankers.
    texts = [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
    assert all(text.startswith("topic: ") for text in texts)
    expected = Reranker(model).rerank(query, texts)

    ranked = EdgeColbertRerank(top_n=None, model=model).postprocess_nodes(nodes, query_str=query)

    assert [node.node.node_id for node in ranked] == [nodes[r.index].node.node_id for r in expected]
    assert [node.score for node in ranked] == pytest.approx([r.score for r in expected], rel=1e-6)


def test_top_n_keeps_the_best(model: ColBERT) -> None:
    nodes = _nodes()
    everything = EdgeColbertRerank(top_n=None, model=model).postprocess_nodes(nodes, query_str=QUERY)
    assert len(everything) == len(nodes)
    default = EdgeColbertRerank(model=model).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in default] == [n.node.node_id for n in everything[:DEFAULT_TOP_K]]
    five = EdgeColbertRerank(top_n=5, model=model).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in five] == [n.node.node_id for n in everything[:5]]
    assert len(EdgeColbertRerank(top_n=100, model=model).postprocess_nodes(nodes[:3], query_str=QUERY)) == 3


def test_first_stage_scores_are_kept_and_the_callers_nodes_untouched(model: ColBERT) -> None:
    nodes = _nodes(6)
    nodes[2].score = None  # a first stage without scores
    before = [(n.score, dict(n.node.metadata), list(n.node.excluded_llm_metadata_keys)) for n in nodes]
    original_score = {n.node.node_id: n.score for n in nodes}

    ranked = EdgeColbertRerank(top_n=None, model=model).postprocess_nodes(nodes, query_str=QUERY)

    assert [(n.score, dict(n.node.metadata), list(n.node.excluded_llm_metadata_keys)) for n in nodes] == before
    for result in ranked:
        node = result.node
        first = original_score[node.node_id]
        assert result.score != first
        if first is None:
            assert FIRST_STAGE_SCORE_KEY not in node.metadata
            continue
        assert node.metadata[FIRST_STAGE_SCORE_KEY] == first
        # Bookkeeping stays out of what is embedded and what the LLM reads.
        assert FIRST_STAGE_SCORE_KEY not in node.get_content(metadata_mode=MetadataMode.EMBED)
        assert FIRST_STAGE_SCORE_KEY not in node.get_content(metadata_mode=MetadataMode.LLM)
        assert "topic: " in node.get_content(metadata_mode=MetadataMode.LLM)


def test_highlights_go_into_metadata_only_on_request(model: ColBERT) -> None:
    nodes = _nodes(8)
    plain = EdgeColbertRerank(model=model).postprocess_nodes(nodes, query_str=QUERY)
    assert all(HIGHLIGHTS_KEY not in n.node.metadata for n in plain)
    shown = EdgeColbertRerank(model=model, highlight=True).postprocess_nodes(nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in shown] == [(n.node.node_id, n.score) for n in plain]
    # The ranges index the node's own text, though its metadata was part of what was ranked.
    texts = [n.node.text for n in shown]
    assert_metadata_highlights(model, QUERY, texts, [n.node.metadata[HIGHLIGHTS_KEY] for n in shown])
    for result in shown:
        assert {HIGHLIGHTS_KEY, FIRST_STAGE_SCORE_KEY} <= set(result.node.excluded_embed_metadata_keys)
        assert {HIGHLIGHTS_KEY, FIRST_STAGE_SCORE_KEY} <= set(result.node.excluded_llm_metadata_keys)
        assert "'start'" not in result.node.get_content(metadata_mode=MetadataMode.LLM)
    assert all(HIGHLIGHTS_KEY not in n.node.metadata for n in nodes)  # the caller's nodes are left alone
    assert (
        asyncio.run(EdgeColbertRerank(model=model, highlight=True).apostprocess_nodes(nodes, query_str=QUERY)) == shown
    )
    with pytest.raises(ValueError, match="highlight"):
        EdgeColbertRerank(model=model, highlight="yes")


# ---- instrumentation ------------------------------------------------------------------------------


def test_rerank_events_are_emitted(model: ColBERT, recorder: EventRecorder) -> None:
    nodes = _nodes(8)
    rerank = EdgeColbertRerank(top_n=3, model=model)
    ranked = rerank.postprocess_nodes(nodes, query_str=QUERY)

    starts = [e for e in recorder.events if isinstance(e, ReRankStartEvent)]
    ends = [e for e in recorder.events if isinstance(e, ReRankEndEvent)]
    assert len(starts) == 1 and len(ends) == 1
    start, end = starts[0], ends[0]
    assert recorder.events.index(start) < recorder.events.index(end)
    assert start.query.query_str == QUERY
    assert start.top_n == 3
    assert start.model_name == model.name
    assert [n.node.node_id for n in start.nodes] == [n.node.node_id for n in nodes]
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in ranked]


def test_empty_node_list(model: ColBERT, recorder: EventRecorder) -> None:
    assert EdgeColbertRerank(model=model).postprocess_nodes([], query_str=QUERY) == []
    assert [type(e) for e in recorder.events if isinstance(e, (ReRankStartEvent, ReRankEndEvent))] == [
        ReRankStartEvent,
        ReRankEndEvent,
    ]


# ---- errors ---------------------------------------------------------------------------------------


def test_a_query_is_required(model: ColBERT) -> None:
    rerank = EdgeColbertRerank(model=model)
    with pytest.raises(InvalidInputError, match="needs a query"):
        rerank.postprocess_nodes(_nodes(3))
    with pytest.raises(EmptyQueryError):
        rerank.postprocess_nodes(_nodes(3), query_str="   ")


@pytest.mark.parametrize("top_n", [0, -1, 2.5, True, "3"])
def test_bad_top_n(model: ColBERT, top_n: Any) -> None:
    with pytest.raises(InvalidInputError, match="top_n"):
        EdgeColbertRerank(top_n=top_n, model=model)


def test_bad_construction(model: ColBERT, store: EdgeStore, other_model: ColBERT) -> None:
    with pytest.raises(InvalidInputError, match="give model= only"):
        EdgeColbertRerank(model=model, reranker=Reranker(model))
    with pytest.raises(InvalidTypeError, match="store"):
        EdgeColbertRerank(model=model, store={"not": "a store"})  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="model"):
        EdgeColbertRerank(model=42)  # type: ignore[arg-type]
    # Stored vectors from one model and queries from another would score meaninglessly.
    with pytest.raises(ModelMismatchError):
        EdgeColbertRerank(model=other_model, store=store)


# ---- async ----------------------------------------------------------------------------------------


def test_async_equals_sync(model: ColBERT) -> None:
    nodes = _nodes()
    rerank = EdgeColbertRerank(top_n=6, model=model)
    sync = rerank.postprocess_nodes(nodes, query_str=QUERY)
    result = asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))
    assert [(n.node.node_id, n.score) for n in result] == [(n.node.node_id, n.score) for n in sync]


def test_async_does_not_block_the_event_loop(model: ColBERT, monkeypatch: pytest.MonkeyPatch) -> None:
    # The encoder waits for a signal only the event loop can send: run on the loop's thread, it would wait in vain.
    released = threading.Event()
    real = ColBERT.encode_documents

    def waiting(encoder: ColBERT, texts: Any, **kwargs: Any) -> Any:
        if not released.wait(timeout=20):
            raise AssertionError("the event loop was blocked while the model encoded")
        return real(encoder, texts, **kwargs)

    monkeypatch.setattr(ColBERT, "encode_documents", waiting)
    rerank = EdgeColbertRerank(top_n=3, model=model)

    async def scenario() -> list[NodeWithScore]:
        task = asyncio.create_task(rerank.apostprocess_nodes(_nodes(6), query_str=QUERY))
        await asyncio.sleep(0)  # the task starts and hands the encoding to a worker thread
        released.set()
        return await task

    assert len(asyncio.run(scenario())) == 3


# ---- stored vectors -------------------------------------------------------------------------------


def test_stored_nodes_are_scored_without_encoding(model: ColBERT, store: EdgeStore, spy: EncodeSpy) -> None:
    nodes = [NodeWithScore(node=TextNode(id_=hit.id, text=hit.text), score=0.0) for hit in store.get(corpus(24)[1])]
    rerank = EdgeColbertRerank(top_n=None, store=store)

    ranked = rerank.postprocess_nodes(nodes, query_str=QUERY)

    assert spy.encoded == []
    expected = store.rerank(QUERY, [n.node.node_id for n in nodes])
    assert [n.node.node_id for n in ranked] == [hit.id for hit in expected]
    assert [n.score for n in ranked] == pytest.approx([hit.score for hit in expected], rel=1e-6)
    # The same nodes encoded afresh score the same: stored vectors are the node's own.
    fresh = EdgeColbertRerank(top_n=None, model=model, metadata_mode=MetadataMode.NONE)
    assert [n.score for n in fresh.postprocess_nodes(nodes, query_str=QUERY)] == pytest.approx(
        [n.score for n in ranked], rel=1e-5
    )


def test_only_unstored_or_changed_nodes_are_encoded(
    store: EdgeStore, spy: EncodeSpy, caplog: pytest.LogCaptureFixture
) -> None:
    texts, ids, _ = corpus(24)
    # Stored nodes carrying metadata of their own, an "id" among it: only node_id finds them in the store.
    stored = [NodeWithScore(node=TextNode(id_=ids[i], text=texts[i], metadata={"id": f"mine-{i}"})) for i in range(4)]
    new = NodeWithScore(node=TextNode(id_="not-stored", text="a new note about violins"))
    changed = NodeWithScore(node=TextNode(id_=ids[5], text=texts[5] + " and an edit"))
    # A chunk whose own id is not stored is encoded, even where its source document is stored with its text.
    by_source = TextNode(id_="chunk-of-doc-7", text=texts[7])
    by_source.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ids[7])
    nodes = [*stored, new, changed, NodeWithScore(node=by_source)]

    with caplog.at_level(logging.INFO, logger="edgecolbert.scoring.reranker"):
        ranked = EdgeColbertRerank(top_n=None, store=store).postprocess_nodes(nodes, query_str=QUERY)

    assert [record.getMessage() for record in caplog.records] == [
        f"Reranked 7 documents: 4 scored from vectors stored in {store.where}, 3 encoded."
    ]
    # With a store, nodes are encoded by their text alone, as the store encoded its documents.
    assert sorted(spy.encoded) == sorted([new.node.text, changed.node.text, texts[7]])
    assert sorted(n.node.node_id for n in ranked) == sorted(n.node.node_id for n in nodes)
    scores = [n.score for n in ranked]
    assert scores == sorted(scores, reverse=True)
    stored_scores = {hit.id: hit.score for hit in store.rerank(QUERY, ids[:4])}
    by_id = {n.node.node_id: n.score for n in ranked}
    for doc_id in ids[:4]:
        assert by_id[doc_id] == pytest.approx(stored_scores[doc_id], rel=1e-6)
    assert {n.node.metadata["id"] for n in ranked if n.node.node_id in ids[:4]} == {f"mine-{i}" for i in range(4)}


def test_store_backed_async(store: EdgeStore, spy: EncodeSpy) -> None:
    nodes = [NodeWithScore(node=TextNode(id_=hit.id, text=hit.text)) for hit in store.get(corpus(24)[1][:10])]
    rerank = EdgeColbertRerank(top_n=4, store=store)
    result = asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))
    assert [n.node.node_id for n in result] == [hit.id for hit in store.rerank(QUERY, [n.node.node_id for n in nodes])][
        :4
    ]
    assert spy.encoded == []


def test_serialises_and_reloads_from_its_checkpoint_folder(model: ColBERT) -> None:
    rerank = EdgeColbertRerank(top_n=4, model=model, metadata_mode=MetadataMode.NONE)
    data = rerank.to_dict()
    assert data["model"] == model.name and data["top_n"] == 4 and data["class_name"] == "EdgeColbertRerank"
    reloaded = EdgeColbertRerank.from_dict(data)
    nodes = _nodes(10)
    assert [(n.node.node_id, n.score) for n in reloaded.postprocess_nodes(nodes, query_str=QUERY)] == [
        (n.node.node_id, n.score) for n in rerank.postprocess_nodes(nodes, query_str=QUERY)
    ]
