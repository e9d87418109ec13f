"""search_first_stage: the store's first stage on its own, the ranking an evaluation compares MaxSim against."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, EmptyQueryError, InvalidInputError
from store_fixtures import HashEmbedder, corpus, open_store

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path, model: ColBERT):  # type: ignore[no-untyped-def]
    opened = open_store(request.param, tmp_path, model, dense=HashEmbedder(), datatype="float32")
    texts, ids, metadatas = corpus()
    opened.add(texts, ids=ids, metadatas=metadatas)
    yield opened
    opened.close()


def test_bm25_ranks_by_its_own_score_without_the_encoder(store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    def no_encoding(text: str) -> None:
        raise AssertionError("the first stage alone must not encode the query")

    monkeypatch.setattr(store.model, "encode_query", no_encoding)
    hits = store.search_first_stage("violins and comets", top_k=12)
    assert 0 < len(hits) <= 12
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    # Every text with a query word scores above zero; texts without one never come back.
    assert all("violins" in hit.text or "comets" in hit.text for hit in hits)


def test_search_reranks_exactly_the_first_stage_candidates(store) -> None:  # type: ignore[no-untyped-def]
    for first_stage in ("bm25", "dense", "hybrid"):
        candidates = store.search_first_stage("rivers seen in year 7", top_k=9, first_stage=first_stage)
        reranked = store.search("rivers seen in year 7", top_k=9, prefetch_k=9, first_stage=first_stage)
        assert len(candidates) == 9 and len(reranked) == 9
        assert {hit.id for hit in reranked} == {hit.id for hit in candidates}, first_stage
        by_rerank = store.rerank("rivers seen in year 7", [hit.id for hit in reranked])
        assert [hit.id for hit in by_rerank] == [hit.id for hit in reranked]


def test_dense_first_stage_orders_by_the_dense_similarity(store) -> None:  # type: ignore[no-untyped-def]
    query = "cats and dogs"
    hits = store.search_first_stage(query, top_k=60, first_stage="dense")
    assert len(hits) == 60
    embedder = HashEmbedder()
    expected = sorted(
        (sum(a * b for a, b in zip(embedder.embed_query(query), embedder.embed_query(hit.text))) for hit in hits),
        reverse=True,
    )
    assert [hit.score for hit in hits] == pytest.approx(expected, abs=1e-5)


def test_hybrid_scores_are_reciprocal_rank_fusion(store) -> None:  # type: ignore[no-untyped-def]
    hits = store.search_first_stage("mountains in year 3", top_k=5, first_stage="hybrid")
    assert len(hits) == 5
    # RRF with k=60 over two lists, ranks counted from 0 as Qdrant does: at most 2/60 per document.
    assert all(0 < hit.score <= 2 / 60 + 1e-9 for hit in hits)


def test_filters_and_arguments(store) -> None:  # type: ignore[no-untyped-def]
    hits = store.search_first_stage("cats", top_k=20, filter={"topic": "cats"})
    assert hits and all(hit.metadata["topic"] == "cats" for hit in hits)
    with pytest.raises(InvalidInputError):
        store.search_first_stage("cats", top_k=0)
    with pytest.raises(EmptyQueryError):
        store.search_first_stage("  ")
    with pytest.raises(InvalidInputError):
        store.search_first_stage("cats", first_stage="sparse")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="query"):
        store.search_first_stage("cats \ud800")  # a lone surrogate is refused as search() refuses it


def test_async_twin_matches(store) -> None:  # type: ignore[no-untyped-def]
    sync = store.search_first_stage("comets", top_k=5)
    assert asyncio.run(store.asearch_first_stage("comets", top_k=5)) == sync
