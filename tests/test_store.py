"""EdgeStore and QdrantStore: the same methods give the same results on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, InvalidInputError, InvalidTypeError, Reranker, maxsim
from edgecolbert.store import (
    DocumentNotFoundError,
    EdgeStore,
    ModelMismatchError,
    StoreDocument,
    StoreError,
    StoreLockedError,
)
from store_fixtures import CountingModel, HashEmbedder, corpus, count_query_encodings, open_store

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer

ENGINES = ["edge", "qdrant"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


def _filled(engine: str, tmp_path: Path, model: ColBERT, **options):  # type: ignore[no-untyped-def]
    store = open_store(engine, tmp_path, model, **options)
    texts, ids, metadatas = corpus()
    store.add(texts, ids=ids, metadatas=metadatas)
    return store


def _numpy_scores(model: ColBERT, query: str, texts: list[str]) -> np.ndarray:
    return maxsim(model.encode_query(query), model.encode_documents(texts))


# ---- writes ---------------------------------------------------------------------------------------


def test_add_get_count_delete(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)
    texts, _, metadatas = corpus()
    assert store.count() == len(texts)
    got = store.get(["doc-3", "missing", "doc-1"])
    assert [hit.id for hit in got] == ["doc-3", "doc-1"]
    assert got[0].text == texts[3] and got[0].metadata == metadatas[3]
    store.delete(["doc-3", "never-stored"])
    assert store.count() == len(texts) - 1
    assert store.get(["doc-3"]) == []
    store.close()


def test_add_is_idempotent_and_reencodes_only_changes(engine: str, tmp_path: Path, model: ColBERT) -> None:
    counting = CountingModel(model)
    store = open_store(engine, tmp_path, model)
    store.model = counting
    texts, ids, metadatas = corpus(10)
    store.add(texts, ids=ids, metadatas=metadatas)
    assert len(counting.encoded) == 10

    store.add(texts, ids=ids, metadatas=metadatas)
    assert len(counting.encoded) == 10, "unchanged documents were encoded again"

    changed_meta = [dict(meta, topic="edited") for meta in metadatas]
    report = store.add_documents(StoreDocument(t, i, m) for t, i, m in zip(texts, ids, changed_meta))
    assert len(counting.encoded) == 10, "a metadata-only change must not re-encode"
    assert report.metadata_updated == 10
    assert store.get(["doc-0"])[0].metadata["topic"] == "edited"

    store.add(["a completely new text"], ids=["doc-4"])
    assert counting.encoded[-1] == "a completely new text"
    assert store.get(["doc-4"])[0].text == "a completely new text"
    assert store.count() == 10
    store.close()


def test_ids_default_to_content(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = open_store(engine, tmp_path, model)
    first = store.add(["same text", "other text", "same text"])
    assert first[0] == first[2] and first[0] != first[1]
    assert store.count() == 2
    assert store.add(["same text"]) == [first[0]]
    store.close()


def test_caller_ids_of_any_shape_round_trip(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = open_store(engine, tmp_path, model)
    ids = ["42", "0042", "A1B2C3D4-0000-4000-8000-000000000000", "path/to/file.md#0-120", 7]
    store.add([f"text {i}" for i in range(5)], ids=ids)
    assert store.count() == 5
    assert [hit.id for hit in store.get(ids)] == [str(doc_id) for doc_id in ids]
    store.close()


def test_bad_batches_are_refused_whole(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = open_store(engine, tmp_path, model)
    with pytest.raises(InvalidInputError, match="twice"):
        store.add(["one", "two"], ids=["x", "x"])
    with pytest.raises(InvalidTypeError):
        store.add(["one", 2])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="entries"):
        store.add(["one", "two"], ids=["x"])
    with pytest.raises(InvalidInputError, match="JSON"):
        store.add(["one"], metadatas=[{"when": object()}])
    with pytest.raises(InvalidInputError, match="JSON"):
        store.add(["one"], metadatas=[{"score": float("nan")}])
    with pytest.raises(InvalidInputError, match="empty"):
        store.add(["one"], ids=["  "])
    assert store.count() == 0
    store.add(["same", "same"], ids=["x", "x"])  # an exact repeat is harmless
    assert store.count() == 1
    store.close()


@pytest.mark.slow
def test_add_documents_streams_in_bounded_batches(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = open_store(engine, tmp_path, model)
    consumed = 0
    acknowledged: list[str] = []
    largest_gap = 0

    def documents():  # type: ignore[no-untyped-def]
        nonlocal consumed
        for i in range(250):
            consumed += 1
            yield {"id": f"s{i}", "text": f"streamed text number {i}", "metadata": {"i": i}}

    def on_batch(ids: list[str]) -> None:
        nonlocal largest_gap
        acknowledged.extend(ids)
        largest_gap = max(largest_gap, consumed - len(acknowledged))

    report = store.add_documents(documents(), batch_size=32, on_batch=on_batch)
    assert report.added == 250 and len(acknowledged) == 250
    assert largest_gap == 0, "documents were read ahead of what was written"
    assert store.count() == 250
    with pytest.raises(InvalidInputError):
        store.add_documents(["x"], batch_size=0)
    with pytest.raises(InvalidInputError, match="text"):
        store.add_documents([{"id": "no-text"}])
    store.close()


# ---- exactness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["cats in the year 12", "rivers and mountains", "violins"])
def test_float32_scores_equal_numpy_maxsim(engine: str, tmp_path: Path, model: ColBERT, query: str) -> None:
    store = _filled(engine, tmp_path, model, datatype="float32")
    texts, ids, _ = corpus()
    expected = _numpy_scores(model, query, texts)
    hits = store.rerank(query, ids)
    order = [ids[i] for i in np.argsort(-expected, kind="stable")]
    assert [hit.id for hit in hits] == order
    got = np.array([hit.score for hit in hits])
    np.testing.assert_allclose(got, np.sort(expected)[::-1], rtol=1e-5)
    store.close()


@pytest.mark.slow
def test_float16_scores_are_within_one_percent(tmp_path: Path, model: ColBERT) -> None:
    # qdrant-client's local mode ignores the storage datatype, so only the embedded engine stores float16.
    store = _filled("edge", tmp_path, model, datatype="float16")
    assert store.schema.datatype == "float16"
    texts, ids, _ = corpus()
    expected = dict(zip(ids, _numpy_scores(model, "comets and dogs", texts)))
    for hit in store.rerank("comets and dogs", ids):
        assert hit.score == pytest.approx(expected[hit.id], rel=1e-2)
    store.close()


@pytest.mark.slow
def test_zero_padding_leaves_scores_unchanged(engine: str, tmp_path: Path, model: ColBERT) -> None:
    plain = _filled(engine, tmp_path / "plain", model, datatype="float32", vector_size=model.dim)
    padded = _filled(engine, tmp_path / "padded", model, datatype="float32")
    wider = _filled(engine, tmp_path / "wider", model, datatype="float32", vector_size=model.dim + 40)
    assert plain.schema.vector_size == model.dim == 24
    assert padded.schema.vector_size == 32, "the default pads to a multiple of 32"
    assert wider.schema.vector_size == 64
    _, ids, _ = corpus()
    a = [(hit.id, hit.score) for hit in plain.rerank("dogs in year 3", ids)]
    for other in (padded, wider):
        b = [(hit.id, hit.score) for hit in other.rerank("dogs in year 3", ids)]
        assert [i for i, _ in a] == [i for i, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-6)
    with pytest.raises(InvalidInputError, match="vector_size"):
        open_store(engine, tmp_path / "narrow", model, vector_size=model.dim - 1)
    for store in (plain, padded, wider):
        store.close()


def test_both_engines_return_the_same_hits(tmp_path: Path, model: ColBERT) -> None:
    edge = _filled("edge", tmp_path, model, datatype="float32")
    qdrant = _filled("qdrant", tmp_path, model, datatype="float32")
    # Both engines break ties by point id; tests/test_search_determinism.py cuts through runs of ties.
    for query, options in [
        ("cats and dogs", {}),
        ("year 40 rivers", {"top_k": 3, "prefetch_k": 11}),
        ("violins", {"filter": {"tags": ["odd"], "year": {"gte": 2000}}}),
    ]:
        a = edge.search(query, **options)
        b = qdrant.search(query, **options)
        assert [hit.id for hit in a] == [hit.id for hit in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5)
    edge.close()


# ---- search ---------------------------------------------------------------------------------------


def test_search_reranks_the_bm25_candidates(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model, datatype="float32")
    texts, ids, _ = corpus()
    hits = store.search("violins", top_k=5, prefetch_k=100)
    # Only documents containing the word can come out of a BM25 first stage.
    with_word = [doc_id for doc_id, text in zip(ids, texts) if "violins" in text]
    assert hits and {hit.id for hit in hits} <= set(with_word)
    scores = dict(zip(ids, _numpy_scores(model, "violins", texts)))
    best = sorted(with_word, key=lambda doc_id: -scores[doc_id])[:5]
    assert [hit.id for hit in hits] == best
    assert [hit.to_dict()["id"] for hit in hits] == best
    store.close()


def test_search_filters(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)
    query = "a short text about cats and dogs"
    by_topic = store.search(query, top_k=50, filter={"topic": "dogs"})
    assert by_topic and all(hit.metadata["topic"] == "dogs" for hit in by_topic)
    by_tags = store.search(query, top_k=50, filter={"tags": {"in": ["rivers", "comets"]}})
    assert by_tags and all({"rivers", "comets"} & set(hit.metadata["tags"]) for hit in by_tags)
    by_year = store.search(query, top_k=50, filter={"year": {"gte": 2000, "lt": 2010}, "tags": "even"})
    assert by_year and all(2000 <= hit.metadata["year"] < 2010 and hit.metadata["year"] % 2 == 0 for hit in by_year)
    assert store.search(query, filter={"topic": "absent"}) == []
    for bad in ({"year": 2.5}, {"year": {"near": 3}}, {"tags": []}, {"tags": ["a", 1]}, ["topic"]):
        with pytest.raises(InvalidInputError):
            store.search(query, filter=bad)  # type: ignore[arg-type]
    store.close()


def test_search_rejects_bad_arguments(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)
    for kwargs in ({"top_k": 0}, {"prefetch_k": -1}, {"first_stage": "sparse"}, {"first_stage": "dense"}):
        with pytest.raises(InvalidInputError):
            store.search("cats", **kwargs)
    with pytest.raises(InvalidInputError):
        store.search("   ")
    assert store.search("the of and") == []  # nothing but stopwords: BM25 proposes no candidates
    store.close()


def test_dense_and_hybrid_first_stages(engine: str, tmp_path: Path, model: ColBERT) -> None:
    embedder = HashEmbedder()
    store = open_store(engine, tmp_path, model, dense=embedder)
    assert store.schema.dense_size == embedder.size
    texts, ids, metadatas = corpus()
    store.add(texts, ids=ids, metadatas=metadatas)
    dense_hits = store.search("mountains", top_k=5, first_stage="dense", prefetch_k=10)
    hybrid_hits = store.search("mountains", top_k=5, first_stage="hybrid", prefetch_k=10)
    explicit = store.search("mountains", top_k=5, first_stage="dense", prefetch_k=10,
                            dense_vector=embedder.embed_query("mountains"))  # fmt: skip
    assert len(dense_hits) == 5 and len(hybrid_hits) == 5
    assert [h.id for h in dense_hits] == [h.id for h in explicit]
    # The dense first stage only proposes the 10 nearest by the dense vector.
    vectors = np.array(embedder.embed_documents(texts))
    nearest = {ids[i] for i in np.argsort(-(vectors @ np.array(embedder.embed_query("mountains"))))[:10]}
    assert {hit.id for hit in dense_hits} <= nearest
    with pytest.raises(InvalidInputError, match="values"):
        store.add(["x"], dense_vectors=[[0.0, 1.0]])
    with pytest.raises(InvalidInputError, match="NaN"):
        store.add(["x"], dense_vectors=[[float("nan")] * embedder.size])
    store.close()


def test_rerank_stored_documents(engine: str, tmp_path: Path, model: ColBERT) -> None:
    counting = CountingModel(model)
    store = _filled(engine, tmp_path, model)
    store.model = counting
    hits = store.rerank("comets", ["doc-5", "doc-11", "doc-4", "doc-5"], top_k=2)
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    assert counting.encoded == [], "stored documents were encoded again"
    assert store.rerank("comets", []) == []
    with pytest.raises(DocumentNotFoundError, match="nope"):
        store.rerank("comets", ["doc-5", "nope"])
    store.close()


def test_async_twins_match_sync(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)

    async def run():  # type: ignore[no-untyped-def]
        added = await store.aadd(["an async text about comets"], ids=["async-1"])
        found = await store.asearch("comets", top_k=5)
        reranked = await store.arerank("comets", ["doc-5", "async-1"])
        got = await store.aget(["async-1"])
        total = await store.acount()
        await store.adelete(["async-1"])
        return added, found, reranked, got, total

    added, found, reranked, got, total = asyncio.run(run())
    assert added == ["async-1"] and got[0].text == "an async text about comets"
    assert [h.id for h in found] == [h.id for h in store.search("comets", top_k=5)]
    assert {h.id for h in reranked} == {"doc-5", "async-1"}
    assert total == 61 and store.count() == 60
    store.close()


def test_async_twins_forward_every_argument(engine: str, tmp_path: Path, model: ColBERT) -> None:
    embedder = HashEmbedder()
    store = open_store(engine, tmp_path, model, dense=embedder)
    texts, ids, metadatas = corpus(12)
    documents = [StoreDocument(text=t, id=i, metadata=m) for t, i, m in zip(texts[6:], ids[6:], metadatas[6:])]
    batches: list[list[str]] = []
    even = {"tags": ["even"]}
    mountains = embedder.embed_query("mountains")

    async def run():  # type: ignore[no-untyped-def]
        added = await store.aadd(texts[:6], ids[:6], metadatas[:6], dense_vectors=embedder.embed_documents(texts[:6]))
        await store.aadd_documents(documents, batch_size=4, progress=False, total=6, on_batch=batches.append)
        found = await store.asearch("comets", 3, 8, "dense", even, dense_vector=mountains)
        first = await store.asearch_first_stage("comets", 5, "dense", even, dense_vector=mountains)
        return added, found, first

    added, found, first = asyncio.run(run())
    assert added == ids[:6] and store.count() == 12
    assert batches == [ids[6:10], ids[10:]]
    assert [h.id for h in found] == [h.id for h in store.search("comets", 3, 8, "dense", even, dense_vector=mountains)]
    assert len(found) == 3 and all("even" in h.metadata["tags"] for h in found)
    assert [h.id for h in first] == [
        h.id for h in store.search_first_stage("comets", 5, "dense", even, dense_vector=mountains)
    ]
    assert len(first) == 5 and all("even" in h.metadata["tags"] for h in first)
    store.close()


# ---- the embedded store on disk -------------------------------------------------------------------


def test_edge_store_reopens_with_identical_results(tmp_path: Path, model: ColBERT) -> None:
    store = _filled("edge", tmp_path, model)
    before = [hit.to_dict() for hit in store.search("rivers in year 20", top_k=10)]
    store.close()
    for closed_call in (store.count, lambda: store.delete(["doc-1"]), lambda: store.add(["x"])):
        with pytest.raises(InvalidInputError, match="closed"):
            closed_call()
    with EdgeStore(tmp_path / "store", model) as reopened:
        assert reopened.count() == 60
        assert [hit.to_dict() for hit in reopened.search("rivers in year 20", top_k=10)] == before


def test_edge_store_remembers_its_model(tmp_path: Path, model: ColBERT, other_model: ColBERT) -> None:
    _filled("edge", tmp_path, model).close()
    with EdgeStore(tmp_path / "store") as reopened:  # no model given: the one it was built with
        assert reopened.model.dim == model.dim
        assert reopened.search("cats", top_k=3)
    with pytest.raises(ModelMismatchError, match="indexed with"):
        EdgeStore(tmp_path / "store", other_model)
    with pytest.raises(StoreError, match="datatype"):
        EdgeStore(tmp_path / "store", model, datatype="float16")


def test_edge_store_folder_has_one_owner(tmp_path: Path, model: ColBERT) -> None:
    store = EdgeStore(tmp_path / "store", model)
    with pytest.raises(StoreLockedError, match="one owner"):
        EdgeStore(tmp_path / "store", model)
    store.close()
    EdgeStore(tmp_path / "store", model).close()


def test_edge_store_refuses_foreign_folders(tmp_path: Path, model: ColBERT) -> None:
    (tmp_path / "file").write_text("not a store")
    with pytest.raises(StoreError, match="file"):
        EdgeStore(tmp_path / "file", model)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "edgecolbert.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        EdgeStore(tmp_path / "broken", model)


def test_qdrant_store_reopens_from_collection_metadata(model: ColBERT, other_model: ColBERT) -> None:
    from qdrant_client import QdrantClient

    from edgecolbert.store import QdrantStore

    client = QdrantClient(":memory:")
    texts, ids, metadatas = corpus(12)
    QdrantStore("docs", model, client=client, vector_size=32).add(texts, ids=ids, metadatas=metadatas)
    reopened = QdrantStore("docs", client=client, model=model)
    assert reopened.schema.vector_size == 32 and reopened.count() == 12
    with pytest.raises(ModelMismatchError):
        QdrantStore("docs", other_model, client=client)
    client.create_collection("foreign")
    with pytest.raises(StoreError, match="attach"):
        QdrantStore("foreign", model, client=client)
    with pytest.raises(InvalidInputError, match="url"):
        QdrantStore("docs", model)


def test_creation_options_reach_qdrant(model: ColBERT) -> None:
    from qdrant_client import QdrantClient, models

    from edgecolbert.store import QdrantStore

    client = QdrantClient(":memory:")
    calls: list[dict] = []
    original = client.create_collection

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        return original(*args, **kwargs)

    client.create_collection = spy  # type: ignore[method-assign]
    QdrantStore("docs", model, client=client, shard_number=3, replication_factor=2, on_disk=True, quantization="int8")
    options = calls[0]
    assert options["shard_number"] == 3 and options["replication_factor"] == 2
    assert options["vectors_config"]["colbert"].on_disk is True
    assert options["vectors_config"]["colbert"].hnsw_config.m == 0
    assert options["vectors_config"]["colbert"].datatype == models.Datatype.FLOAT16
    assert options["quantization_config"].scalar.type == models.ScalarType.INT8
    binary = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    QdrantStore("binary", model, client=client, quantization=binary)
    assert calls[1]["quantization_config"] is binary


@pytest.mark.slow
def test_edge_store_with_int8_quantization_ranks_like_float32(tmp_path: Path, model: ColBERT) -> None:
    exact = _filled("edge", tmp_path / "exact", model, datatype="float32")
    quantized = _filled("edge", tmp_path / "int8", model, quantization="int8")
    _, ids, _ = corpus()
    exact_scores = {hit.id: hit.score for hit in exact.rerank("rivers and comets", ids)}
    quantized_hits = quantized.rerank("rivers and comets", ids)
    assert quantized.schema.quantization == "int8"
    for hit in quantized_hits:
        assert hit.score == pytest.approx(exact_scores[hit.id], rel=1e-2)
    exact.close()
    quantized.close()


# ---- one result type, one result count, a rerank mixing stored and new documents ------------------


def test_hits_carry_the_normalized_maxsim_where_the_score_is_one(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model, datatype="float32")
    n_query = len(model.encode_query("violins"))
    for hit in [*store.search("violins", top_k=5), *store.rerank("violins", ["doc-1", "doc-2"])]:
        assert hit.normalized_score == pytest.approx(hit.score / n_query) and hit.index is None
        assert hit.to_dict()["normalized_score"] == hit.normalized_score
    assert all(hit.normalized_score is None for hit in store.search_first_stage("violins", top_k=5))
    assert store.get(["doc-1"])[0].normalized_score is None
    store.close()


def test_k_is_the_deprecated_name_of_top_k(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)
    ids = corpus()[1][:6]
    calls = [
        (store.search, store.asearch, ("violins",), 3),
        (store.search_first_stage, store.asearch_first_stage, ("violins",), 4),
        (store.rerank, store.arerank, ("violins", ids), 2),
    ]
    for method, twin, args, count in calls:
        expected = method(*args, top_k=count)
        assert len(expected) == count
        with pytest.warns(DeprecationWarning, match=r"k= is deprecated .* use top_k= instead"):
            assert method(*args, k=count) == expected
        with pytest.warns(DeprecationWarning, match="k= is deprecated"):
            assert asyncio.run(twin(*args, k=count)) == expected
        with pytest.raises(InvalidInputError, match="k= is the former name of top_k=: give top_k= only"):
            method(*args, top_k=count + 1, k=count)
    store.close()


def test_rerank_with_a_store_scores_stored_documents_from_their_vectors(
    engine: str, tmp_path: Path, model: ColBERT
) -> None:
    store = _filled(engine, tmp_path, model, datatype="float32")
    texts, ids, _ = corpus()
    reranker = Reranker(model)
    counting = CountingModel(model)
    reranker.model = counting  # type: ignore[assignment]
    documents = [
        StoreDocument(text=texts[0], id=ids[0], metadata={"doc_id": "the user's own id"}),  # stored
        {"text": texts[1], "id": ids[1]},  # stored, given as a mapping
        StoreDocument(text="an edited note about violins", id=ids[2]),  # a stored id with other text
        "a new note about violins and comets",  # no id
        StoreDocument(text=texts[3], id="never-stored"),  # an id the store does not hold
    ]

    results = reranker.rerank("violins", documents, store=store)

    assert (results.stored, results.encoded) == (2, 3)
    assert sorted(counting.encoded) == sorted(["an edited note about violins", documents[3], texts[3]])
    # The store and the reranker share the model: the merged ranking is the one of encoding everything.
    plain = [StoreDocument(text=texts[0]), texts[1], "an edited note about violins", documents[3], texts[3]]
    everything = Reranker(model).rerank("violins", plain)
    assert (everything.stored, everything.encoded) == (0, 5)
    assert [r.index for r in results] == [r.index for r in everything]
    np.testing.assert_allclose([r.score for r in results], [r.score for r in everything], rtol=1e-5)
    np.testing.assert_allclose(
        [r.normalized_score for r in results], [r.normalized_score for r in everything], rtol=1e-5
    )
    by_index = {r.index: r for r in results}
    assert (by_index[0].id, by_index[0].metadata) == (ids[0], {"doc_id": "the user's own id"})
    assert (by_index[1].id, by_index[3].id, by_index[4].id) == (ids[1], None, "never-stored")
    assert [r.index for r in reranker.rerank("violins", documents, 2, store=store)] == [r.index for r in results][:2]
    store.close()


def test_rerank_with_a_store_encodes_the_query_once(
    engine: str, tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _filled(engine, tmp_path, model, datatype="float32")
    texts, ids, _ = corpus()
    documents = [StoreDocument(text=texts[0], id=ids[0]), {"text": texts[1], "id": ids[1]}, "a new note on violins"]
    reranker = Reranker(model)
    expected = [(r.index, r.score, r.normalized_score) for r in Reranker(model).rerank("violins", documents)]
    encoded = count_query_encodings(model, monkeypatch)
    for highlight in (False, True):
        results = reranker.rerank("violins", documents, store=store, highlight=highlight)
        # The stored documents, the encoded one and the highlights all score with one encoding.
        assert encoded == ["violins"], highlight
        assert (results.stored, results.encoded) == (2, 1)
        assert [r.index for r in results] == [index for index, _, _ in expected]
        np.testing.assert_allclose([r.score for r in results], [score for _, score, _ in expected], rtol=1e-5)
        encoded.clear()
    assert reranker.rerank("violins", [], store=store).to_list() == [] and encoded == []
    store.close()


def test_a_query_encoded_by_the_caller_is_not_encoded_again(
    engine: str, tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _filled(engine, tmp_path, model, datatype="float32")
    ids = ["doc-5", "doc-11", "doc-4"]
    vectors = model.encode_query("comets")
    expected = [(h.id, h.score, h.normalized_score, h.highlights) for h in store.rerank("comets", ids, highlight=True)]
    encoded = count_query_encodings(model, monkeypatch)
    given = store.rerank("comets", ids, highlight=True, query_vectors=vectors)
    given_async = asyncio.run(store.arerank("comets", ids, highlight=True, query_vectors=vectors))
    assert encoded == []
    for hits in (given, given_async):
        assert [(h.id, h.score, h.normalized_score, h.highlights) for h in hits] == expected
    for bad in (vectors[:, :-1], vectors[0], np.full_like(vectors, np.nan), "comets"):
        with pytest.raises(InvalidInputError, match="query_vectors"):
            store.rerank("comets", ids, query_vectors=bad)
    with pytest.raises(InvalidInputError, match="query_vectors has 1 rows"):
        store.rerank("comets", ids, highlight=True, query_vectors=vectors[:1])
    store.close()


def test_rerank_with_a_store_of_another_model_is_refused(tmp_path: Path, model: ColBERT, other_model: ColBERT) -> None:
    with open_store("edge", tmp_path, model) as store, pytest.raises(ModelMismatchError, match="encodes differently"):
        Reranker(other_model).rerank("violins", ["a note"], store=store)
