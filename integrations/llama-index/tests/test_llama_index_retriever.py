"""EdgeColbertRetriever: LlamaIndex nodes from edgecolbert stores, filters, and LlamaIndex's own Qdrant collections."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkpoints import requires_minilm
from edgecolbert import ColBERT, InvalidInputError, InvalidTypeError, Reranker
from store_fixtures import HashEmbedder, assert_metadata_highlights, corpus, open_store

pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (the test extra has it)")

try:
    import llama_index.retrievers.edgecolbert  # noqa: F401
except ImportError:  # not pip-installed: test the integration from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from llama_index.retrievers.edgecolbert import EdgeColbertRetriever, LlamaIndexDense, to_store_filter

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer

ENGINES = ["edge", "qdrant"]
QUERY = "rivers and mountains in year 30"


@pytest.fixture(scope="module", params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> Iterator[Any]:
    # Read-only in every test: one filled store per engine serves the module.
    folder = tmp_path_factory.mktemp(f"retriever-{request.param}")
    opened = open_store(request.param, folder, model, datatype="float32", dense=HashEmbedder(), muvera=True)
    texts, ids, metadatas = corpus()
    opened.add(texts, ids=ids, metadatas=metadatas)
    yield opened
    opened.close()


def _summary(results: list[Any]) -> list[tuple[str, float, str, dict[str, Any]]]:
    return [(r.node.node_id, r.score, r.node.text, r.node.metadata) for r in results]


def _hits(hits: list[Any]) -> list[tuple[str, float, str, dict[str, Any]]]:
    return [(h.id, h.score, h.text, h.metadata) for h in hits]


# ---- results are the store's ----------------------------------------------------------------------


@pytest.mark.parametrize("first_stage", [None, "bm25", "dense", "hybrid", "muvera", "hybrid-muvera"])
def test_results_are_the_stores_search(store: Any, first_stage: str | None) -> None:
    retriever = EdgeColbertRetriever(store, similarity_top_k=7, prefetch_k=20, first_stage=first_stage)
    results = retriever.retrieve(QUERY)
    assert len(results) == 7
    assert all(isinstance(r.node, TextNode) for r in results)
    # Ties are broken by point id at every cut, so one answer is the answer.
    assert _summary(results) == _hits(store.search(QUERY, top_k=7, prefetch_k=20, first_stage=first_stage))


def test_default_top_k_is_the_shared_one(store: Any) -> None:
    from edgecolbert import DEFAULT_TOP_K

    assert len(EdgeColbertRetriever(store).retrieve(QUERY)) == DEFAULT_TOP_K


def test_async_equals_sync(store: Any) -> None:
    retriever = EdgeColbertRetriever(store, similarity_top_k=5, filters={"topic": "rivers"})
    assert _summary(asyncio.run(retriever.aretrieve(QUERY))) == _summary(retriever.retrieve(QUERY))


def test_highlights_go_into_metadata_only_on_request(store: Any) -> None:
    from llama_index.core.schema import MetadataMode

    from llama_index.postprocessor.edgecolbert_rerank import HIGHLIGHTS_KEY

    plain = EdgeColbertRetriever(store, similarity_top_k=3).retrieve(QUERY)
    assert all(HIGHLIGHTS_KEY not in r.node.metadata for r in plain)
    shown = EdgeColbertRetriever(store, similarity_top_k=3, highlight=True).retrieve(QUERY)
    assert [(r.node.node_id, r.score) for r in shown] == [(r.node.node_id, r.score) for r in plain]
    texts = [r.node.text for r in shown]
    assert_metadata_highlights(store.model, QUERY, texts, [r.node.metadata[HIGHLIGHTS_KEY] for r in shown])
    for result in shown:
        assert HIGHLIGHTS_KEY in result.node.excluded_embed_metadata_keys
        assert HIGHLIGHTS_KEY in result.node.excluded_llm_metadata_keys
        assert "'start'" not in result.node.get_content(metadata_mode=MetadataMode.EMBED)
    retriever = EdgeColbertRetriever(store, similarity_top_k=3, highlight=True)
    assert _summary(asyncio.run(retriever.aretrieve(QUERY))) == _summary(shown)
    with pytest.raises(InvalidTypeError, match="highlight"):
        EdgeColbertRetriever(store, highlight="yes")


def test_the_query_bundles_embedding_feeds_a_dense_first_stage(tmp_path: Path, model: ColBERT) -> None:
    # A store opened without a dense model can still run a dense first stage on the bundle's embedding.
    texts, ids, metadatas = corpus()
    embedder = HashEmbedder()
    with open_store("edge", tmp_path, model, dense_size=embedder.size) as store:
        store.add(texts, ids=ids, metadatas=metadatas, dense_vectors=embedder.embed_documents(texts))
        retriever = EdgeColbertRetriever(store, similarity_top_k=5, prefetch_k=8, first_stage="dense")
        with pytest.raises(InvalidInputError, match="dense"):
            retriever.retrieve(QUERY)
        bundle = QueryBundle(QUERY, embedding=embedder.embed_query(QUERY))
        expected = store.search(QUERY, top_k=5, prefetch_k=8, first_stage="dense", dense_vector=bundle.embedding)
        assert _summary(retriever.retrieve(bundle)) == _hits(expected)


# ---- filters --------------------------------------------------------------------------------------


EQUIVALENT_FILTERS = [
    (
        MetadataFilters(filters=[MetadataFilter(key="topic", value="cats")]),
        {"topic": "cats"},
    ),
    (
        MetadataFilters(
            filters=[
                MetadataFilter(key="year", value=2000, operator=FilterOperator.GTE),
                MetadataFilter(key="year", value=2030, operator=FilterOperator.LT),
                MetadataFilter(key="topic", value=["rivers", "cats"], operator=FilterOperator.IN),
            ]
        ),
        {"year": {"gte": 2000, "lt": 2030}, "topic": {"in": ["rivers", "cats"]}},
    ),
    (
        MetadataFilters(
            filters=[
                MetadataFilter(key="tags", value="even", operator=FilterOperator.CONTAINS),
                MetadataFilter(key="year", value=2020, operator=FilterOperator.GT),
            ],
            condition=FilterCondition.AND,
        ),
        {"tags": "even", "year": {"gt": 2020}},
    ),
    (
        MetadataFilters(filters=[MetadataFilter(key="tags", value=["odd"], operator=FilterOperator.ANY)]),
        {"tags": {"in": ["odd"]}},
    ),
    (
        MetadataFilters(filters=[MetadataFilter(key="year", value=2005.0)]),
        {"year": {"gte": 2005.0, "lte": 2005.0}},
    ),
]


@pytest.mark.parametrize(("llama_filters", "store_filter"), EQUIVALENT_FILTERS)
def test_metadata_filters_translate(llama_filters: MetadataFilters, store_filter: dict[str, Any]) -> None:
    assert to_store_filter(llama_filters) == store_filter


def test_filters_select_what_they_say(store: Any) -> None:
    # A dense first stage as wide as the corpus proposes every document, so the filter alone decides.
    options = {"similarity_top_k": 60, "prefetch_k": 60, "first_stage": "dense"}
    results = EdgeColbertRetriever(store, **options, filters=EQUIVALENT_FILTERS[1][0]).retrieve(QUERY)

    _, ids, metadatas = corpus()
    matching = {i for i, m in zip(ids, metadatas) if 2000 <= m["year"] < 2030 and m["topic"] in ("rivers", "cats")}
    assert matching and len(matching) < len(ids)
    assert {r.node.node_id for r in results} == matching
    # The mapping form gives the same nodes in the same order.
    same = EdgeColbertRetriever(store, **options, filters=EQUIVALENT_FILTERS[1][1]).retrieve(QUERY)
    assert _summary(same) == _summary(results)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (MetadataFilters(filters=[MetadataFilter(key="a", value="x", operator=FilterOperator.NE)]), "'!='"),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="a", value="x"), MetadataFilter(key="b", value="y")],
                condition=FilterCondition.OR,
            ),
            "'or'",
        ),
        (
            MetadataFilters(filters=[MetadataFilters(filters=[MetadataFilter(key="a", value="x")])]),
            "Nested",
        ),
        (
            MetadataFilters(filters=[MetadataFilter(key="a", value="x"), MetadataFilter(key="a", value="y")]),
            "two conditions",
        ),
        (MetadataFilters(filters=[MetadataFilter(key="a", value="x", operator=FilterOperator.IN)]), "list"),
        ({"year": {"between": [1, 2]}}, "unknown condition"),
    ],
)
def test_untranslatable_filters_are_refused(filters: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        to_store_filter(filters)


def test_bad_arguments(store: Any) -> None:
    with pytest.raises(InvalidTypeError, match="store"):
        EdgeColbertRetriever("./edgecolbert_data")  # type: ignore[arg-type]
    for bad in (0, -3, 1.5, True):
        with pytest.raises(InvalidInputError, match="similarity_top_k"):
            EdgeColbertRetriever(store, bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="prefetch_k"):
            EdgeColbertRetriever(store, prefetch_k=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="first_stage"):
        EdgeColbertRetriever(store, first_stage="splade")
    with pytest.raises(InvalidTypeError, match="filters"):
        EdgeColbertRetriever(store, filters=[("topic", "cats")])  # type: ignore[arg-type]
    # A filter the store would refuse is refused when the retriever is made, not at its first query.
    with pytest.raises(InvalidInputError, match="range bound"):
        EdgeColbertRetriever(store, filters={"year": {"gte": "2020"}})


# ---- a collection written by LlamaIndex's QdrantVectorStore ----------------------------------------


class HashEmbedding(BaseEmbedding):
    """A deterministic, offline LlamaIndex embedding: hashed bag of words (shared words, similar vectors)."""

    def _vector(self, text: str) -> list[float]:
        return HashEmbedder().embed_query(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def _hashed_sparse(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
    """An offline stand-in for the sparse model LlamaIndex's hybrid mode would download: hashed word counts."""
    indices, values = [], []
    for text in texts:
        counts: dict[int, float] = {}
        for word in text.lower().split():
            slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % 1000
            counts[slot] = counts.get(slot, 0.0) + 1.0
        indices.append(list(counts))
        values.append(list(counts.values()))
    return indices, values


# What the installed llama-index-vector-stores-qdrant writes: an unnamed dense vector by default, a
# dense vector named "text-dense" beside a sparse one in hybrid mode; node text only in "_node_content".
@pytest.fixture(params=["dense", "hybrid"])
def llama_collection(request: pytest.FixtureRequest) -> Iterator[tuple[Any, list[TextNode], HashEmbedding]]:
    qdrant_client = pytest.importorskip("qdrant_client")
    qdrant_store = pytest.importorskip(
        "llama_index.vector_stores.qdrant", reason="llama-index-vector-stores-qdrant is not installed"
    )
    from llama_index.core import StorageContext, VectorStoreIndex

    client = qdrant_client.QdrantClient(":memory:")
    texts, _, metadatas = corpus(30)
    nodes = [
        TextNode(text=text, metadata={"topic": m["topic"], "year": m["year"]}) for text, m in zip(texts, metadatas)
    ]
    embedding = HashEmbedding(model_name="hash", embed_batch_size=8)
    hybrid = request.param == "hybrid"
    sparse = {"enable_hybrid": True, "sparse_doc_fn": _hashed_sparse, "sparse_query_fn": _hashed_sparse}
    vector_store = qdrant_store.QdrantVectorStore(
        client=client, collection_name="llama_nodes", **(sparse if hybrid else {})
    )
    with warnings.catch_warnings():
        # qdrant-client's local mode says once per process that it has no payload indexes.
        warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
        VectorStoreIndex(
            nodes, storage_context=StorageContext.from_defaults(vector_store=vector_store), embed_model=embedding
        )
    vectors = client.get_collection("llama_nodes").config.params.vectors
    assert isinstance(vectors, dict) == hybrid and (not hybrid or "text-dense" in vectors)
    assert "text" not in (client.scroll("llama_nodes", limit=1, with_payload=True)[0][0].payload or {})
    yield client, nodes, embedding
    client.close()


def test_attach_to_a_llama_index_collection_and_retrieve(llama_collection: Any, model: ColBERT) -> None:
    from edgecolbert.store import QdrantStore

    client, nodes, embedding = llama_collection
    store = QdrantStore.attach("llama_nodes", model, client=client, dense=LlamaIndexDense(embedding), progress=False)
    assert store.schema.layout == "llama-index"  # detected from what this LlamaIndex version writes
    by_id = {node.node_id: node for node in nodes}
    prefetch = 8
    retriever = EdgeColbertRetriever(store, similarity_top_k=5, prefetch_k=prefetch, first_stage="dense")

    results = retriever.retrieve(QUERY)

    assert len(results) == 5
    for result in results:  # the LlamaIndex nodes come back: their ids, texts and metadata
        node = by_id[result.node.node_id]
        assert result.node.text == node.text
        assert result.node.metadata == node.metadata
    # The first stage is the collection's own dense vector: LlamaIndex's dense top 8 holds every result...
    dense = VectorIndexRetrieverOver(client, embedding, prefetch).retrieve(QUERY)
    candidates = [r.node.node_id for r in dense]
    assert {r.node.node_id for r in results} <= set(candidates)
    # ...and MaxSim orders them as edgecolbert's Reranker orders those candidates' texts.
    expected = Reranker(model).rerank(QUERY, [by_id[c].text for c in candidates], top_k=5)
    assert [r.node.node_id for r in results] == [candidates[e.index] for e in expected]
    assert [r.score for r in results] == pytest.approx([e.score for e in expected], rel=1e-5)
    # LlamaIndex keeps reading and querying its collection with the colbert vector beside its own.
    assert len(dense) == prefetch
    assert _summary(asyncio.run(retriever.aretrieve(QUERY))) == _summary(results)

    filtered = EdgeColbertRetriever(
        store,
        similarity_top_k=30,
        prefetch_k=30,
        first_stage="dense",
        filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2010, operator=FilterOperator.GTE)]),
    ).retrieve(QUERY)
    assert sorted(r.node.node_id for r in filtered) == sorted(n.node_id for n in nodes if n.metadata["year"] >= 2010)


def VectorIndexRetrieverOver(client: Any, embedding: HashEmbedding, k: int) -> Any:
    """LlamaIndex's own dense retriever over the collection, reopened from the client."""
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    index = VectorStoreIndex.from_vector_store(
        QdrantVectorStore(client=client, collection_name="llama_nodes"), embed_model=embedding
    )
    return index.as_retriever(similarity_top_k=k)
