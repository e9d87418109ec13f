"""QdrantStore.attach: a colbert vector added to collections that langchain-qdrant or LlamaIndex made.

The foreign collections are written here with qdrant-client alone, in the payload and vector layouts
those tools use, so neither tool has to be installed.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, InvalidInputError, maxsim
from edgecolbert.errors import ModelMismatchError, StoreError
from edgecolbert.store import QdrantStore
from store_fixtures import HashEmbedder, corpus

qdrant_client = pytest.importorskip("qdrant_client")
models = qdrant_client.models

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer

N_DOCS = 30
LLAMA_DENSE = "text-dense"
LLAMA_INTERNAL = ("_node_content", "_node_type", "doc_id", "document_id", "ref_doc_id")


@pytest.fixture
def client() -> Iterator[Any]:
    qdrant = qdrant_client.QdrantClient(":memory:")
    yield qdrant
    qdrant.close()


class EncodeSpy:
    """Records the texts every ColBERT instance encodes as documents; can fail after some calls."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self._real = real
        self.calls: list[list[str]] = []
        self.fail_after_calls: int | None = None

    @property
    def encoded(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def __call__(self, encoder: ColBERT, texts: Any, **kwargs: Any) -> Any:
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise RuntimeError("encoder failure injected by the test")
        self.calls.append(list(texts))
        return self._real(encoder, texts, **kwargs)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> EncodeSpy:
    recorder = EncodeSpy(ColBERT.encode_documents)

    def encode_documents(encoder: ColBERT, texts: Any, **kwargs: Any) -> Any:
        return recorder(encoder, texts, **kwargs)

    monkeypatch.setattr(ColBERT, "encode_documents", encode_documents)
    return recorder


# ---- the foreign layouts --------------------------------------------------------------------------


def _uuids(n: int, seed: int = 0) -> list[str]:
    """uuid4-shaped ids, as both tools make them, but the same on every call for a seed."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def langchain_collection(client: Any, name: str, n: int = N_DOCS) -> tuple[list[str], list[str], list[dict]]:
    """What langchain-qdrant writes: an unnamed dense vector, uuid ids, page_content + nested metadata."""
    texts, _, metadatas = corpus(n)
    ids = _uuids(n)
    client.create_collection(name, vectors_config=models.VectorParams(size=16, distance=models.Distance.COSINE))
    vectors = HashEmbedder().embed_documents(texts)
    client.upsert(
        name,
        [
            models.PointStruct(id=pid, vector=vector, payload={"page_content": text, "metadata": meta})
            for pid, vector, text, meta in zip(ids, vectors, texts, metadatas)
        ],
        wait=True,
    )
    return ids, texts, metadatas


def _node_content(node_id: str, source_id: str, text: str, metadata: dict[str, Any]) -> str:
    node = {
        "id_": node_id,
        "embedding": None,
        "metadata": metadata,
        "excluded_embed_metadata_keys": [],
        "excluded_llm_metadata_keys": [],
        "relationships": {
            "1": {
                "node_id": source_id,
                "node_type": "4",
                "metadata": {},
                "hash": "0" * 64,
                "class_name": "RelatedNodeInfo",
            }
        },
        "metadata_template": "{key}: {value}",
        "metadata_separator": "\n",
        "text": text,
        "mimetype": "text/plain",
        "start_char_idx": 0,
        "end_char_idx": len(text),
        "text_template": "{metadata_str}\n\n{content}",
        "class_name": "TextNode",
    }
    return json.dumps(node)


def llama_index_collection(
    client: Any, name: str, *, top_level_text: bool, n: int = N_DOCS
) -> tuple[list[str], list[str], list[dict], list[str]]:
    """What LlamaIndex's QdrantVectorStore writes: a named dense vector, node ids as point ids, flat payload.

    With ``top_level_text`` the text sits in a top-level ``text`` key and the node JSON holds an empty
    text (so reading the wrong one shows); without it the text is only inside ``_node_content``.
    """
    texts, _, full_metadatas = corpus(n)
    metadatas = [{"topic": meta["topic"], "year": meta["year"]} for meta in full_metadatas]
    ids = _uuids(n, seed=1)
    sources = [f"source-document-{i // 3}" for i in range(n)]  # several nodes per source document
    client.create_collection(
        name, vectors_config={LLAMA_DENSE: models.VectorParams(size=16, distance=models.Distance.COSINE)}
    )
    vectors = HashEmbedder().embed_documents(texts)
    points = []
    for pid, source, vector, text, meta in zip(ids, sources, vectors, texts, metadatas):
        payload: dict[str, Any] = {
            **meta,
            "_node_content": _node_content(pid, source, "" if top_level_text else text, meta),
            "_node_type": "TextNode",
            "document_id": source,
            "doc_id": source,
            "ref_doc_id": source,
        }
        if top_level_text:
            payload["text"] = text
        points.append(models.PointStruct(id=pid, vector={LLAMA_DENSE: vector}, payload=payload))
    client.upsert(name, points, wait=True)
    return ids, texts, metadatas, sources


# ---- helpers --------------------------------------------------------------------------------------


def _missing_colbert(client: Any, name: str) -> int:
    missing = models.Filter(must_not=[models.HasVectorCondition(has_vector="colbert")])
    return client.count(name, count_filter=missing, exact=True).count


def _attach(client: Any, name: str, model: ColBERT | None, **options: Any) -> QdrantStore:
    options.setdefault("progress", False)
    return QdrantStore.attach(name, model, client=client, **options)


def _maxsim_scores(model: ColBERT, query: str, texts: list[str]) -> np.ndarray:
    return maxsim(model.encode_query(query), model.encode_documents(texts))


def _dense_cut(query: str, texts: list[str], near: int) -> tuple[int, set[int]]:
    """A prefetch size close to ``near`` that does not cut through tied dense scores, and its candidates."""
    embedder = HashEmbedder()
    scores = np.array(embedder.embed_documents(texts)) @ np.array(embedder.embed_query(query))
    ordered = np.sort(scores)[::-1]
    for size in sorted(range(3, len(texts) - 1), key=lambda s: abs(s - near)):
        if ordered[size - 1] - ordered[size] > 1e-4:
            return size, {int(i) for i in np.argsort(-scores, kind="stable")[:size]}
    raise AssertionError("no untied cut in the dense scores")


def _check_ranked(hits: list[Any], expected: dict[str, float], k: int) -> None:
    """Hits are the top ``k`` of ``expected`` (id -> MaxSim) in order, with those scores."""
    best = sorted(expected, key=lambda doc_id: -expected[doc_id])[:k]
    assert [hit.id for hit in hits] == best
    np.testing.assert_allclose([hit.score for hit in hits], [expected[doc_id] for doc_id in best], rtol=1e-4)


# ---- langchain-qdrant -----------------------------------------------------------------------------


def test_attach_langchain_collection(client: Any, model: ColBERT) -> None:
    ids, texts, metadatas = langchain_collection(client, "lc")
    assert _missing_colbert(client, "lc") == N_DOCS
    store = _attach(client, "lc", model, dense=HashEmbedder(), batch_size=8)
    assert store.schema.layout == "langchain"
    assert store.schema.dense_name == "" and store.schema.dense_size == 16 and not store.schema.bm25
    assert _missing_colbert(client, "lc") == 0
    assert client.get_collection("lc").config.metadata["edgecolbert"]["layout"] == "langchain"
    assert store.count() == N_DOCS

    # Every point's colbert vector belongs to its own text.
    query = "a short text about rivers seen in year 7"
    all_scores = _maxsim_scores(model, query, texts)
    reranked = store.rerank(query, ids)
    _check_ranked(reranked, dict(zip(ids, all_scores)), N_DOCS)
    assert store.rerank(query, [ids[4], ids[9]], top_k=1)[0].id in {ids[4], ids[9]}

    # Search: the dense vector proposes the candidates, MaxSim orders them.
    prefetch_k, candidates = _dense_cut(query, texts, near=8)
    hits = store.search(query, top_k=5, prefetch_k=prefetch_k)
    _check_ranked(hits, {ids[i]: all_scores[i] for i in candidates}, 5)
    by_id = dict(zip(ids, zip(texts, metadatas)))
    for hit in hits:
        assert (hit.text, hit.metadata) == by_id[hit.id]

    # Filters reach the nested metadata.
    dogs = store.search(query, top_k=50, filter={"topic": "dogs"})
    assert {hit.id for hit in dogs} == {pid for pid, meta in zip(ids, metadatas) if meta["topic"] == "dogs"}
    assert store.search(query, filter={"year": {"gte": 2030}}) == []

    got = store.get([ids[2], str(uuid.UUID(int=5, version=4)), ids[0]])
    assert [hit.id for hit in got] == [ids[2], ids[0]]
    assert (got[0].text, got[0].metadata) == (texts[2], metadatas[2])


def test_add_to_attached_langchain_collection(client: Any, model: ColBERT) -> None:
    langchain_collection(client, "lc", n=12)
    store = _attach(client, "lc", model, dense=HashEmbedder())
    [new_id] = store.add(["a new note about glaciers and comets"], metadatas=[{"topic": "glaciers"}])
    record = client.retrieve("lc", [new_id], with_vectors=True)[0]
    # Readable by langchain-qdrant (page_content + metadata), with its dense vector and a colbert one.
    assert record.payload["page_content"] == "a new note about glaciers and comets"
    assert record.payload["metadata"] == {"topic": "glaciers"}
    assert set(record.vector) == {"", "colbert"}
    hits = store.search("glaciers", top_k=1, filter={"topic": "glaciers"})
    assert [hit.id for hit in hits] == [new_id]
    assert store.count() == 13 and _missing_colbert(client, "lc") == 0


# ---- LlamaIndex -----------------------------------------------------------------------------------


@pytest.mark.parametrize("top_level_text", [True, False], ids=["text-key", "node-content-only"])
def test_attach_llama_index_collection(client: Any, model: ColBERT, top_level_text: bool) -> None:
    ids, texts, metadatas, sources = llama_index_collection(client, "li", top_level_text=top_level_text)
    store = _attach(client, "li", model, dense=HashEmbedder(), batch_size=7)
    assert store.schema.layout == "llama-index"
    assert store.schema.dense_name == LLAMA_DENSE and store.schema.metadata_key == ""
    assert _missing_colbert(client, "li") == 0

    query = "mountains and violins in year 4"
    all_scores = _maxsim_scores(model, query, texts)
    # Encoded from the real text: an empty text would score differently.
    _check_ranked(store.rerank(query, ids), dict(zip(ids, all_scores)), N_DOCS)

    prefetch_k, candidates = _dense_cut(query, texts, near=10)
    hits = store.search(query, top_k=4, prefetch_k=prefetch_k)
    _check_ranked(hits, {ids[i]: all_scores[i] for i in candidates}, 4)
    by_id = dict(zip(ids, zip(texts, metadatas)))
    for hit in hits:
        assert hit.id not in sources
        assert hit.text == by_id[hit.id][0]
        assert hit.metadata == by_id[hit.id][1]
        assert not set(LLAMA_INTERNAL) & set(hit.metadata) and "text" not in hit.metadata

    cats = store.search(query, top_k=50, filter={"topic": "cats"})
    assert {hit.id for hit in cats} == {pid for pid, meta in zip(ids, metadatas) if meta["topic"] == "cats"}
    late = store.search(query, top_k=50, filter={"year": {"gte": 2010}})
    assert {hit.id for hit in late} == {pid for pid, meta in zip(ids, metadatas) if meta["year"] >= 2010}

    got = store.get([ids[5]])
    assert [(hit.id, hit.text, hit.metadata) for hit in got] == [(ids[5], texts[5], metadatas[5])]

    with pytest.raises(InvalidInputError, match="LlamaIndex"):
        store.add(["a node written past LlamaIndex"])
    with pytest.raises(InvalidInputError, match="LlamaIndex"):
        store.add_documents([{"text": "another one", "id": ids[0]}])
    assert store.count() == N_DOCS
    assert store.get([ids[0]])[0].text == texts[0]


# ---- resuming and re-attaching --------------------------------------------------------------------


def test_interrupted_attach_resumes_where_it_stopped(model: ColBERT, spy: EncodeSpy) -> None:
    interrupted = qdrant_client.QdrantClient(":memory:")
    ids, texts, _ = langchain_collection(interrupted, "lc")
    spy.fail_after_calls = 1
    with pytest.raises(RuntimeError, match="injected"):
        _attach(interrupted, "lc", model, dense=HashEmbedder(), batch_size=8)
    first_batch = spy.encoded
    assert len(first_batch) == 8
    assert _missing_colbert(interrupted, "lc") == N_DOCS - 8

    spy.fail_after_calls = None
    spy.calls.clear()
    store = _attach(interrupted, "lc", model, dense=HashEmbedder(), batch_size=8)
    assert len(spy.encoded) == N_DOCS - 8
    assert sorted(first_batch + spy.encoded) == sorted(texts), "a point was encoded twice or never"
    assert _missing_colbert(interrupted, "lc") == 0

    whole = qdrant_client.QdrantClient(":memory:")
    assert langchain_collection(whole, "lc")[0] == ids
    reference = _attach(whole, "lc", model, dense=HashEmbedder(), batch_size=8)
    for query, options in [("cats and dogs", {}), ("rivers in year 12", {"top_k": 3, "prefetch_k": 12})]:
        a = [(hit.id, hit.text, hit.metadata) for hit in store.search(query, **options)]
        b = [(hit.id, hit.text, hit.metadata) for hit in reference.search(query, **options)]
        assert a == b
    a_scores = [hit.score for hit in store.rerank("comets", ids)]
    b_scores = [hit.score for hit in reference.rerank("comets", ids)]
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)


def test_reattaching_encodes_nothing_and_checks_the_model(
    client: Any, model: ColBERT, other_model: ColBERT, spy: EncodeSpy
) -> None:
    texts = llama_index_collection(client, "li", top_level_text=False)[1]
    first = _attach(client, "li", model, dense=HashEmbedder())
    assert sorted(spy.encoded) == sorted(texts)
    stored = dict(client.get_collection("li").config.metadata["edgecolbert"])

    spy.calls.clear()
    again = _attach(client, "li", model, dense=HashEmbedder())
    assert spy.encoded == []
    assert again.schema == first.schema
    assert again.backfill(progress=False) == 0

    # No model given: the stored schema names it.
    reopened = _attach(client, "li", None, dense=HashEmbedder(), device="cpu")
    assert spy.encoded == []
    assert reopened.schema == first.schema and reopened.model.dim == model.dim
    assert client.get_collection("li").config.metadata["edgecolbert"] == stored
    assert [hit.id for hit in reopened.search("cats", top_k=3)] == [hit.id for hit in first.search("cats", top_k=3)]

    with pytest.raises(ModelMismatchError, match="indexed with"):
        _attach(client, "li", other_model, dense=HashEmbedder())
    assert spy.encoded == []

    # A point LlamaIndex adds later is the only one the next attach encodes.
    extra = _uuids(1, seed=99)[0]
    text = "a late node about comets"
    client.upsert(
        "li",
        [
            models.PointStruct(
                id=extra,
                vector={LLAMA_DENSE: HashEmbedder().embed_query(text)},
                payload={
                    "topic": "comets",
                    "_node_content": _node_content(extra, "late", text, {"topic": "comets"}),
                    "_node_type": "TextNode",
                    "document_id": "late",
                    "doc_id": "late",
                    "ref_doc_id": "late",
                },
            )
        ],
        wait=True,
    )
    _attach(client, "li", model, dense=HashEmbedder())
    assert spy.encoded == [text]
    assert _missing_colbert(client, "li") == 0
    assert extra in {hit.id for hit in first.search(text, top_k=50, filter={"topic": "comets"})}
    [late] = first.rerank(text, [extra])
    assert late.text == text and late.metadata == {"topic": "comets"}
    assert late.score == pytest.approx(float(_maxsim_scores(model, text, [text])[0]), rel=1e-4)


# ---- layouts that cannot be detected --------------------------------------------------------------


def test_undetectable_layouts(client: Any, model: ColBERT) -> None:
    texts, _, metadatas = corpus(12)
    ids = _uuids(12)
    client.create_collection(
        "plain", vectors_config={"emb": models.VectorParams(size=16, distance=models.Distance.COSINE)}
    )
    client.upsert(
        "plain",
        [
            models.PointStruct(id=pid, vector={"emb": vector}, payload={"text": text, "topic": meta["topic"]})
            for pid, vector, text, meta in zip(ids, HashEmbedder().embed_documents(texts), texts, metadatas)
        ],
        wait=True,
    )
    with pytest.raises(StoreError, match="layout="):
        _attach(client, "plain", model, dense=HashEmbedder())
    # Nothing was changed by the refused attach.
    assert "colbert" not in client.get_collection("plain").config.params.vectors
    assert client.get_collection("plain").config.metadata is None

    # Saying which layout it is works: top-level text and flat metadata, as LlamaIndex keeps them.
    store = _attach(client, "plain", model, dense=HashEmbedder(), layout="llama-index")
    assert store.schema.layout == "llama-index" and store.schema.dense_name == "emb"
    assert _missing_colbert(client, "plain") == 0
    hits = store.search("violins", top_k=3, filter={"topic": "violins"})
    assert hits and all(hit.text == texts[ids.index(hit.id)] for hit in hits)
    assert all(hit.metadata == {"topic": "violins"} for hit in hits)

    client.create_collection("empty", vectors_config=models.VectorParams(size=16, distance=models.Distance.COSINE))
    with pytest.raises(StoreError, match="empty"):
        _attach(client, "empty", model, dense=HashEmbedder())
    assert client.get_collection("empty").config.metadata is None


def test_explicit_langchain_layout(client: Any, model: ColBERT) -> None:
    ids, texts, metadatas = langchain_collection(client, "lc", n=12)
    store = _attach(client, "lc", model, dense=HashEmbedder(), layout="langchain")
    assert store.schema.layout == "langchain" and store.schema.text_key == "page_content"
    assert _missing_colbert(client, "lc") == 0
    hit = store.get([ids[3]])[0]
    assert (hit.text, hit.metadata) == (texts[3], metadatas[3])


def test_refused_attaches_leave_the_collection_alone(client: Any, model: ColBERT) -> None:
    langchain_collection(client, "lc", n=6)

    def untouched() -> bool:
        info = client.get_collection("lc").config
        return (
            info.metadata is None and _missing_colbert(client, "lc") == 6 and not isinstance(info.params.vectors, dict)
        )

    with pytest.raises(InvalidInputError, match="layout"):
        _attach(client, "lc", model, layout="haystack")  # type: ignore[arg-type]
    assert untouched()
    with pytest.raises(InvalidInputError, match="batch_size"):
        _attach(client, "lc", model, batch_size=0)
    assert untouched()
    with pytest.raises(StoreError, match="does not exist"):
        _attach(client, "missing", model)
    assert not client.collection_exists("missing")
    store = _attach(client, "lc", model, dense=HashEmbedder())
    assert store.schema.layout == "langchain" and _missing_colbert(client, "lc") == 0
    with pytest.raises(InvalidInputError, match="batch_size"):
        store.backfill(batch_size=-1)

    # A colbert vector that some other tool made is not taken over.
    client.create_collection(
        "theirs",
        vectors_config={
            "": models.VectorParams(size=16, distance=models.Distance.COSINE),
            "colbert": models.VectorParams(
                size=model.dim,
                distance=models.Distance.DOT,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
            ),
        },
    )
    client.upsert(
        "theirs",
        [models.PointStruct(id=_uuids(1)[0], vector={"": [1.0] * 16}, payload={"page_content": "x", "metadata": {}})],
        wait=True,
    )
    with pytest.raises(StoreError, match="already has"):
        _attach(client, "theirs", model)
    assert client.get_collection("theirs").config.metadata is None


# ---- the dense first stage ------------------------------------------------------------------------


def test_dense_first_stage_needs_a_query_vector(client: Any, model: ColBERT) -> None:
    langchain_collection(client, "lc", n=20)
    with_dense = _attach(client, "lc", model, dense=HashEmbedder())
    without = _attach(client, "lc", model)
    query = "mountains seen in year 9"
    with pytest.raises(InvalidInputError, match="dense_vector="):
        without.search(query)
    with pytest.raises(InvalidInputError, match="BM25"):
        with_dense.search(query, first_stage="bm25")
    explicit = without.search(query, top_k=5, prefetch_k=8, dense_vector=HashEmbedder().embed_query(query))
    expected = with_dense.search(query, top_k=5, prefetch_k=8)
    assert len(explicit) == 5
    assert [hit.to_dict() for hit in explicit] == [hit.to_dict() for hit in expected]

    # Opening the attached collection like any other store gives the same dense first stage.
    opened = QdrantStore("lc", client=client, dense=HashEmbedder())
    assert opened.schema.layout == "langchain"
    assert [hit.to_dict() for hit in opened.search(query, top_k=5, prefetch_k=8)] == [hit.to_dict() for hit in expected]
    with pytest.raises(InvalidInputError, match="dense_vector="):
        QdrantStore("lc", model, client=client).search(query)


class FlakyClient:
    """A client whose every server call first fails with a dropped connection."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.failed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        import httpx

        method = getattr(self._client, name)
        if not callable(method):
            return method

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if name not in self.failed:
                self.failed.append(name)
                raise httpx.ConnectError("connection reset (injected by the test)")
            return method(*args, **kwargs)

        return flaky


def test_attach_retries_transient_failures_of_every_call(client: Any, model: ColBERT) -> None:
    langchain_collection(client, "lc")
    flaky = FlakyClient(client)
    store = _attach(flaky, "lc", model, dense=HashEmbedder(), batch_size=8, retry_backoff=0.0)
    assert _missing_colbert(client, "lc") == 0
    assert store.count() == N_DOCS
    calls = {"collection_exists", "get_collection", "scroll", "update_collection", "create_vector_name"}
    assert calls | {"count", "update_vectors"} <= set(flaky.failed)


def test_attach_that_died_before_creating_the_vector_completes(client: Any, model: ColBERT) -> None:
    langchain_collection(client, "lc")
    schema = _attach(client, "lc", model).schema.model_dump()
    # What a process killed between recording the schema and creating the vector leaves behind.
    client.delete_vector_name("lc", "colbert")
    client.update_collection("lc", metadata={"edgecolbert": schema})
    assert "colbert" not in client.get_collection("lc").config.params.vectors
    store = _attach(client, "lc", model, dense=HashEmbedder())
    assert _missing_colbert(client, "lc") == 0
    assert len(store.search("cats", top_k=3)) == 3


def test_attach_warns_when_the_layout_finds_no_text(
    client: Any, model: ColBERT, caplog: pytest.LogCaptureFixture
) -> None:
    llama_index_collection(client, "li", top_level_text=True)
    with caplog.at_level("WARNING"):
        _attach(client, "li", model, layout="langchain")
    assert "had no text under 'page_content'" in caplog.text
