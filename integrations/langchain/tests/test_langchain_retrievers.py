"""EdgeColbertRetriever and RerankRetriever (integrations/langchain), and a langchain-qdrant collection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgecolbert import DEFAULT_TOP_K, ColBERT, EmptyQueryError, Reranker
from edgecolbert.errors import StoreLockedError
from edgecolbert.store import EdgeStore
from store_fixtures import CountingModel, HashEmbedder, assert_metadata_highlights, corpus, open_store

pytest.importorskip("langchain_core", reason="langchain-core is not installed (pip install -e '.[test]')")
# The package in this checkout, whether or not (or from wherever) it was pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from langchain_edgecolbert import (
    FIRST_STAGE_SCORE_KEY,
    HIGHLIGHTS_KEY,
    SCORE_KEY,
    EdgeColbertRerank,
    EdgeColbertRetriever,
    RerankRetriever,
)

QUERY = "a short text about comets"
N_DOCS = 40


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> Iterator[Any]:
    """Both engines, with BM25 and a dense vector, holding the shared corpus; tests only read it."""
    if request.param == "qdrant":
        pytest.importorskip("qdrant_client")
    texts, ids, metadatas = corpus(N_DOCS)
    folder = tmp_path_factory.mktemp("store")
    with open_store(request.param, folder, model, dense=HashEmbedder(), muvera=True) as opened:
        opened.add(texts, ids, metadatas)
        yield opened


def _as_hits(documents: list[Document]) -> list[tuple[str | None, float]]:
    return [(doc.id, doc.metadata[SCORE_KEY]) for doc in documents]


# ---- EdgeColbertRetriever --------------------------------------------------------------------


@pytest.mark.parametrize("first_stage", [None, "bm25", "dense", "hybrid", "muvera", "hybrid-muvera"])
def test_results_are_the_stores_search(store: Any, first_stage: str | None) -> None:
    retriever = EdgeColbertRetriever(store=store, k=6, prefetch_k=15, first_stage=first_stage)
    found = retriever.invoke(QUERY)
    assert len(found) == 6
    # Ties are broken by point id at every cut, so one answer is the answer.
    assert _as_hits(found) == [
        (hit.id, hit.score) for hit in store.search(QUERY, top_k=6, prefetch_k=15, first_stage=first_stage)
    ]
    texts, ids, metadatas = corpus(N_DOCS)
    by_id = {doc_id: (text, meta) for text, doc_id, meta in zip(texts, ids, metadatas)}
    for doc in found:
        assert (doc.page_content, {k: v for k, v in doc.metadata.items() if k != SCORE_KEY}) == by_id[doc.id]


def test_default_k_is_four(store: Any) -> None:
    assert len(EdgeColbertRetriever(store=store).invoke(QUERY)) == DEFAULT_TOP_K


def test_filter_restricts_the_search(store: Any) -> None:
    condition = {"year": {"gte": 2010}, "tags": ["even"]}
    found = EdgeColbertRetriever(store=store, k=10, filter=condition).invoke("a short text about cats")
    assert found, "the filter leaves documents that BM25 matches"
    assert all(doc.metadata["year"] >= 2010 and "even" in doc.metadata["tags"] for doc in found)
    hits = store.search("a short text about cats", top_k=10, filter=condition)
    assert [doc.id for doc in found] == [hit.id for hit in hits]


def test_options_can_be_given_per_call(store: Any) -> None:
    retriever = EdgeColbertRetriever(store=store, k=5)
    assert len(retriever.invoke(QUERY, k=2)) == 2
    per_call = retriever.invoke(QUERY, first_stage="dense", filter={"topic": "comets"}, k=3)
    hits = store.search(QUERY, top_k=3, first_stage="dense", filter={"topic": "comets"})
    assert [doc.id for doc in per_call] == [hit.id for hit in hits]
    assert retriever.k == 5 and retriever.filter is None  # a per-call option changes nothing for the next call


@pytest.mark.asyncio
async def test_highlights_go_into_metadata_on_request_or_per_call(store: Any) -> None:
    found = EdgeColbertRetriever(store=store, k=3, highlight=True).invoke(QUERY)
    assert _as_hits(found) == [(hit.id, hit.score) for hit in store.search(QUERY, top_k=3)]
    assert_metadata_highlights(
        store.model, QUERY, [doc.page_content for doc in found], [doc.metadata[HIGHLIGHTS_KEY] for doc in found]
    )
    retriever = EdgeColbertRetriever(store=store, k=3)
    assert all(HIGHLIGHTS_KEY not in doc.metadata for doc in retriever.invoke(QUERY))
    assert retriever.invoke(QUERY, highlight=True) == found
    assert await retriever.ainvoke(QUERY, highlight=True) == found
    with pytest.raises(ValidationError, match="highlight"):
        retriever.invoke(QUERY, highlight="yes")


@pytest.mark.asyncio
async def test_async_matches_sync(store: Any) -> None:
    retriever = EdgeColbertRetriever(store=store, k=5, first_stage="hybrid")
    assert _as_hits(await retriever.ainvoke(QUERY)) == _as_hits(retriever.invoke(QUERY))
    queries = [QUERY, "violins and rivers"]
    batched = await retriever.abatch(queries)
    assert [_as_hits(docs) for docs in batched] == [_as_hits(retriever.invoke(q)) for q in queries]
    assert _as_hits(await retriever.ainvoke(QUERY, k=2)) == _as_hits(retriever.invoke(QUERY, k=2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, "k"),
        ({"k": True}, "k"),
        ({"prefetch_k": -1}, "prefetch_k"),
        ({"k": 20, "prefetch_k": 10}, "prefetch_k \\(10\\) is smaller than k \\(20\\)"),
        ({"first_stage": "bm26"}, "first_stage"),
        ({"filter": {"year": {"about": 2000}}}, "about"),
        ({"filter": {"": 1}}, "Filter keys"),
        ({"top_k": 3}, "top_k"),
    ],
)
def test_bad_options_are_refused_at_construction_and_per_call(store: Any, options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EdgeColbertRetriever(store=store, **options)
    with pytest.raises(ValidationError, match=message):
        EdgeColbertRetriever(store=store).invoke(QUERY, **options)


def test_empty_query_raises(store: Any) -> None:
    with pytest.raises(EmptyQueryError, match="empty"):
        EdgeColbertRetriever(store=store).invoke("  ")


def test_from_path_opens_the_embedded_store(tmp_path: Path, model: ColBERT) -> None:
    texts, ids, metadatas = corpus(12)
    with EdgeStore(tmp_path / "docs", model) as store:
        store.add(texts, ids, metadatas)
        expected = [(hit.id, hit.score) for hit in store.search(QUERY, top_k=3)]
    retriever = EdgeColbertRetriever.from_path(tmp_path / "docs", model, k=3)
    try:
        assert isinstance(retriever.store, EdgeStore)
        assert _as_hits(retriever.invoke(QUERY)) == expected
    finally:
        retriever.store.close()


def test_from_path_releases_the_store_when_the_options_are_bad(tmp_path: Path, model: ColBERT) -> None:
    with pytest.raises(ValidationError, match="first_stage"):
        EdgeColbertRetriever.from_path(tmp_path / "docs", model, first_stage="sparse")
    try:
        EdgeStore(tmp_path / "docs", model).close()
    except StoreLockedError:  # pragma: no cover - the failure this test exists to catch
        pytest.fail("a retriever that could not be built kept its store folder locked")


def test_from_qdrant_opens_a_collection(model: ColBERT) -> None:
    qdrant_client = pytest.importorskip("qdrant_client")
    client = qdrant_client.QdrantClient(":memory:")
    texts, ids, metadatas = corpus(12)
    retriever = EdgeColbertRetriever.from_qdrant("notes", model, client=client, k=2)
    retriever.store.add(texts, ids, metadatas)
    assert [doc.id for doc in retriever.invoke(QUERY)] == [hit.id for hit in retriever.store.search(QUERY, top_k=2)]


# ---- RerankRetriever -------------------------------------------------------------------------


class KeywordRetriever(BaseRetriever):
    """A first stage from elsewhere: word overlap, with its score in metadata, and a call count."""

    documents: list[Document]
    k: int = 8
    calls: int = 0

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        self.calls += 1
        words = set(query.lower().split())
        scored = [(len(words & set(doc.page_content.lower().split())), doc) for doc in self.documents]
        scored.sort(key=lambda item: -item[0])
        return [
            Document(id=doc.id, page_content=doc.page_content, metadata={**doc.metadata, "score": float(score)})
            for score, doc in scored[: self.k]
        ]


@pytest.fixture
def keyword_retriever() -> KeywordRetriever:
    texts, ids, metadatas = corpus(N_DOCS)
    return KeywordRetriever(
        documents=[Document(id=i, page_content=t, metadata=m) for t, i, m in zip(texts, ids, metadatas)]
    )


def test_rerank_retriever_reorders_the_first_stage(model: ColBERT, keyword_retriever: KeywordRetriever) -> None:
    retriever = RerankRetriever(
        base_retriever=keyword_retriever, reranker=EdgeColbertRerank(model=Reranker(model), top_n=5)
    )
    found = retriever.invoke(QUERY)
    candidates = keyword_retriever.invoke(QUERY)
    expected = Reranker(model).rerank(QUERY, [doc.page_content for doc in candidates], top_k=5)
    assert [doc.id for doc in found] == [candidates[result.index].id for result in expected]
    assert [doc.metadata[SCORE_KEY] for doc in found] == pytest.approx([result.score for result in expected])
    first_stage = {doc.id: doc.metadata["score"] for doc in candidates}
    assert all(doc.metadata[FIRST_STAGE_SCORE_KEY] == first_stage[doc.id] for doc in found)


def test_rerank_retriever_highlights_through_its_reranker(model: ColBERT, keyword_retriever: KeywordRetriever) -> None:
    reranker = EdgeColbertRerank(model=Reranker(model), top_n=3, highlight=True)
    found = RerankRetriever(base_retriever=keyword_retriever, reranker=reranker).invoke(QUERY)
    assert len(found) == 3
    assert_metadata_highlights(
        model, QUERY, [doc.page_content for doc in found], [doc.metadata[HIGHLIGHTS_KEY] for doc in found]
    )


def test_rerank_retriever_over_an_in_memory_vector_store(model: ColBERT) -> None:
    texts, ids, metadatas = corpus(N_DOCS)
    vector_store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    vector_store.add_texts(texts, metadatas=metadatas, ids=ids)
    base = vector_store.as_retriever(search_kwargs={"k": 10})
    retriever = RerankRetriever(base_retriever=base, reranker=EdgeColbertRerank(model=Reranker(model)), k=4)
    found = retriever.invoke(QUERY)
    candidates = base.invoke(QUERY)
    expected = Reranker(model).rerank(QUERY, [doc.page_content for doc in candidates], top_k=4)
    assert [doc.page_content for doc in found] == [result.document for result in expected]


def test_rerank_retriever_takes_a_compressor_that_loaded_its_model(
    model: ColBERT, keyword_retriever: KeywordRetriever
) -> None:
    compressor = EdgeColbertRerank(model=model.name, model_kwargs={"device": "cpu"}, top_n=3)
    loaded = compressor.reranker
    retriever = RerankRetriever(base_retriever=keyword_retriever, reranker=compressor)
    assert retriever.reranker.reranker is loaded  # taken as it is, not loaded again
    candidates = keyword_retriever.invoke(QUERY)
    expected = Reranker(model).rerank(QUERY, [doc.page_content for doc in candidates], top_k=3)
    assert [doc.page_content for doc in retriever.invoke(QUERY)] == [result.document for result in expected]


def test_rerank_retriever_k(model: ColBERT, keyword_retriever: KeywordRetriever) -> None:
    reranker = EdgeColbertRerank(model=Reranker(model), top_n=2)
    assert len(RerankRetriever(base_retriever=keyword_retriever, reranker=reranker).invoke(QUERY)) == 2
    retriever = RerankRetriever(base_retriever=keyword_retriever, reranker=reranker, k=6)
    assert len(retriever.invoke(QUERY)) == 6
    assert len(retriever.invoke(QUERY, k=1)) == 1
    assert len(retriever.invoke(QUERY, k=None)) == 2  # per call, None means the reranker's top_n
    with pytest.raises(ValidationError, match="k"):
        retriever.invoke(QUERY, k=0)
    with pytest.raises(ValidationError, match="top_n"):
        retriever.invoke(QUERY, top_n=3)
    with pytest.raises(ValidationError, match="k"):
        RerankRetriever(base_retriever=keyword_retriever, reranker=reranker, k=-1)


@pytest.mark.asyncio
async def test_rerank_retriever_async_matches_sync(model: ColBERT, keyword_retriever: KeywordRetriever) -> None:
    retriever = RerankRetriever(
        base_retriever=keyword_retriever, reranker=EdgeColbertRerank(model=Reranker(model), top_n=4)
    )
    assert await retriever.ainvoke(QUERY) == retriever.invoke(QUERY)
    assert await retriever.ainvoke(QUERY, k=7) == retriever.invoke(QUERY, k=7)


@pytest.mark.parametrize("query", ["", " \t"])
def test_rerank_retriever_empty_query_skips_the_first_stage(
    model: ColBERT, keyword_retriever: KeywordRetriever, query: str
) -> None:
    retriever = RerankRetriever(base_retriever=keyword_retriever, reranker=EdgeColbertRerank(model=Reranker(model)))
    with pytest.raises(EmptyQueryError):
        retriever.invoke(query)
    assert keyword_retriever.calls == 0


def test_rerank_retriever_with_a_store_encodes_only_unstored_candidates(
    store: Any, keyword_retriever: KeywordRetriever
) -> None:
    outsider = Document(id="outsider", page_content="comets and a short text about comets, not stored")
    keyword_retriever.documents.append(outsider)
    compressor = EdgeColbertRerank(store=store, top_n=None)
    counting = CountingModel(store.model)
    compressor.reranker.model = counting  # type: ignore[union-attr,assignment]
    found = RerankRetriever(base_retriever=keyword_retriever, reranker=compressor).invoke(QUERY)
    assert counting.encoded == [outsider.page_content]
    assert outsider.id in [doc.id for doc in found]
    assert len(found) == keyword_retriever.k


# ---- a collection langchain-qdrant made ------------------------------------------------------


@pytest.fixture
def langchain_collection(model: ColBERT) -> Iterator[tuple[Any, Any, DeterministicFakeEmbedding]]:
    """A langchain-qdrant QdrantVectorStore in local mode, with a colbert vector attached."""
    pytest.importorskip("qdrant_client")
    langchain_qdrant = pytest.importorskip("langchain_qdrant")
    from edgecolbert.store import QdrantStore

    texts, _, metadatas = corpus(N_DOCS)
    embeddings = DeterministicFakeEmbedding(size=32)
    vector_store = langchain_qdrant.QdrantVectorStore.from_texts(
        texts, embeddings, metadatas=metadatas, location=":memory:", collection_name="lc_docs"
    )
    store = QdrantStore.attach("lc_docs", model, client=vector_store.client, dense=embeddings, progress=False)
    yield vector_store, store, embeddings
    store.close()


def test_retriever_on_a_langchain_qdrant_collection(langchain_collection: tuple[Any, Any, Any]) -> None:
    vector_store, store, _ = langchain_collection
    assert store.schema.layout == "langchain"
    retriever = EdgeColbertRetriever(store=store, first_stage="dense", prefetch_k=10, k=5)
    found = retriever.invoke(QUERY)
    # The candidates are langchain-qdrant's own dense top 10, reordered by MaxSim.
    dense = vector_store.similarity_search(QUERY, k=10)
    dense_ids = [doc.metadata["_id"] for doc in dense]
    expected = store.rerank(QUERY, dense_ids, top_k=5)
    assert [doc.id for doc in found] == [hit.id for hit in expected]
    assert {doc.id for doc in found} <= set(dense_ids)
    by_id = {doc.metadata["_id"]: doc for doc in dense}
    for doc in found:
        original = by_id[doc.id]
        assert doc.page_content == original.page_content
        assert {k: v for k, v in doc.metadata.items() if k != SCORE_KEY} == {
            k: v for k, v in original.metadata.items() if not k.startswith("_")
        }


def test_langchain_qdrant_results_reranked_from_stored_vectors(langchain_collection: tuple[Any, Any, Any]) -> None:
    vector_store, store, _ = langchain_collection
    compressor = EdgeColbertRerank(store=store, top_n=4)
    counting = CountingModel(store.model)
    compressor.reranker.model = counting  # type: ignore[union-attr,assignment]
    base = vector_store.as_retriever(search_kwargs={"k": 12})
    found = RerankRetriever(base_retriever=base, reranker=compressor).invoke(QUERY)
    assert counting.encoded == []
    candidates = base.invoke(QUERY)
    expected = store.rerank(QUERY, [doc.metadata["_id"] for doc in candidates], top_k=4)
    assert [doc.metadata["_id"] for doc in found] == [hit.id for hit in expected]
