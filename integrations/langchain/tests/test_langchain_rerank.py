"""EdgeColbertRerank: the LangChain document compressor (integrations/langchain)."""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from edgecolbert import ColBERT, EmptyQueryError, InvalidDocumentError, InvalidInputError, Reranker
from edgecolbert.errors import ModelMismatchError
from store_fixtures import CountingModel, assert_metadata_highlights, corpus, open_store

pytest.importorskip("langchain_core", reason="langchain-core is not installed (pip install -e '.[test]')")
# The package in this checkout, whether or not (or from wherever) it was pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.documents import Document
from pydantic import ValidationError

from langchain_edgecolbert import FIRST_STAGE_SCORE_KEY, HIGHLIGHTS_KEY, SCORE_KEY, EdgeColbertRerank

QUERY = "a short text about violins"


@pytest.fixture
def documents() -> list[Document]:
    texts, ids, metadatas = corpus(12)
    return [
        Document(id=doc_id, page_content=text, metadata={**meta, "rank": i})
        for i, (text, doc_id, meta) in enumerate(zip(texts, ids, metadatas))
    ]


def _texts(documents: list[Document]) -> list[str]:
    return [doc.page_content for doc in documents]


def _counting(compressor: EdgeColbertRerank) -> CountingModel:
    """Record the documents that reach the compressor's encoder from now on."""
    assert compressor.reranker is not None
    counting = CountingModel(compressor.reranker.model)
    compressor.reranker.model = counting  # type: ignore[assignment]
    return counting


# ---- ranking ---------------------------------------------------------------------------------


def test_order_and_scores_are_the_rerankers(model: ColBERT, documents: list[Document]) -> None:
    ranked = EdgeColbertRerank(model=Reranker(model), top_n=None).compress_documents(documents, QUERY)
    expected = Reranker(model).rerank(QUERY, _texts(documents))
    assert [doc.page_content for doc in ranked] == [result.document for result in expected]
    assert [doc.metadata[SCORE_KEY] for doc in ranked] == pytest.approx([result.score for result in expected])
    assert [doc.id for doc in ranked] == [documents[result.index].id for result in expected]


@pytest.mark.parametrize("as_path", [False, True])
def test_model_loads_the_checkpoint(model: ColBERT, documents: list[Document], as_path: bool) -> None:
    where = Path(model.name) if as_path else model.name
    compressor = EdgeColbertRerank(model=where, model_kwargs={"device": "cpu"}, top_n=None)
    ranked = compressor.compress_documents(documents, QUERY)
    assert compressor.reranker is not None and compressor.reranker.model.dim == model.dim
    expected = Reranker(model).rerank(QUERY, _texts(documents))
    assert [doc.page_content for doc in ranked] == [result.document for result in expected]


def test_without_a_model_it_loads_edgecolberts_default(
    model: ColBERT, documents: list[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECOLBERT_MODEL", model.name)  # what edgecolbert's default resolves to
    compressor = EdgeColbertRerank(model_kwargs={"device": "cpu"})
    assert compressor.reranker is not None
    assert compressor.reranker.model.fingerprint == model.fingerprint
    ranked = compressor.compress_documents(documents, QUERY)
    assert [doc.page_content for doc in ranked] == [
        r.document for r in Reranker(model).rerank(QUERY, _texts(documents), 3)
    ]


@pytest.mark.parametrize(("top_n", "expected"), [(3, 3), (1, 1), (None, 12), (50, 12)])
def test_top_n(model: ColBERT, documents: list[Document], top_n: int | None, expected: int) -> None:
    everything = EdgeColbertRerank(model=Reranker(model), top_n=None).compress_documents(documents, QUERY)
    ranked = EdgeColbertRerank(model=Reranker(model), top_n=top_n).compress_documents(documents, QUERY)
    assert len(ranked) == expected
    assert _texts(list(ranked)) == _texts(list(everything))[:expected]


def test_default_top_n_is_three_and_per_call_override(model: ColBERT, documents: list[Document]) -> None:
    compressor = EdgeColbertRerank(model=Reranker(model))
    assert len(compressor.compress_documents(documents, QUERY)) == 3
    assert len(compressor.rerank(documents, QUERY, top_n=5)) == 5
    assert len(compressor.rerank(documents, QUERY, top_n=None)) == len(documents)
    with pytest.raises(InvalidInputError, match="top_n must be a positive integer"):
        compressor.rerank(documents, QUERY, top_n=0)


def test_returns_copies_and_leaves_the_callers_documents_alone(model: ColBERT, documents: list[Document]) -> None:
    for doc in documents:
        doc.metadata["nested"] = {"kept": [1, 2]}
    before = copy.deepcopy(documents)
    ranked = EdgeColbertRerank(model=Reranker(model), top_n=None).compress_documents(documents, QUERY)
    assert documents == before
    assert all(SCORE_KEY not in doc.metadata for doc in documents)
    originals = {id(doc) for doc in documents} | {id(doc.metadata) for doc in documents}
    assert not {id(doc) for doc in ranked} & originals
    assert not {id(doc.metadata) for doc in ranked} & originals
    # Everything else the caller put on a document travels with its copy.
    by_id = {doc.id: doc for doc in documents}
    for doc in ranked:
        assert {k: v for k, v in doc.metadata.items() if k != SCORE_KEY} == by_id[doc.id].metadata


def test_first_stage_score_is_kept(model: ColBERT, documents: list[Document]) -> None:
    for i, doc in enumerate(documents):
        if i % 2:
            doc.metadata[SCORE_KEY] = 100.0 - i
        else:
            doc.metadata["score"] = 0.5 - i / 100
    compressor = EdgeColbertRerank(model=Reranker(model), top_n=None)
    ranked = compressor.compress_documents(documents, QUERY)
    expected = Reranker(model).rerank(QUERY, _texts(documents))
    by_id = {doc.id: doc for doc in documents}
    for doc, result in zip(ranked, expected):
        original = by_id[doc.id].metadata
        assert doc.metadata[FIRST_STAGE_SCORE_KEY] == original.get(SCORE_KEY, original.get("score"))
        assert doc.metadata[SCORE_KEY] == pytest.approx(result.score)
    # A second rerank keeps the first stage's score, not the first rerank's.
    again = compressor.compress_documents(ranked, "comets")
    assert {doc.id: doc.metadata[FIRST_STAGE_SCORE_KEY] for doc in again} == {
        doc.id: doc.metadata[FIRST_STAGE_SCORE_KEY] for doc in ranked
    }


def test_documents_without_a_first_stage_score_get_none(model: ColBERT, documents: list[Document]) -> None:
    ranked = EdgeColbertRerank(model=Reranker(model)).compress_documents(documents, QUERY)
    assert all(FIRST_STAGE_SCORE_KEY not in doc.metadata for doc in ranked)


# ---- async -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_matches_sync_and_uses_the_async_twin(model: ColBERT, documents: list[Document]) -> None:
    reranker = Reranker(model)
    calls: list[str] = []
    real = reranker.arerank

    async def recording_arerank(*args: Any, **kwargs: Any) -> Any:
        calls.append("arerank")
        return await real(*args, **kwargs)

    reranker.arerank = recording_arerank  # type: ignore[method-assign]
    compressor = EdgeColbertRerank(model=reranker, top_n=5)
    ranked = await compressor.acompress_documents(documents, QUERY)
    assert calls == ["arerank"]
    assert ranked == compressor.compress_documents(documents, QUERY)
    assert await compressor.arerank(documents, QUERY, top_n=None) == compressor.rerank(documents, QUERY, top_n=None)


# ---- input and configuration errors ----------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_raises_and_encodes_nothing(model: ColBERT, documents: list[Document], query: str) -> None:
    compressor = EdgeColbertRerank(model=Reranker(model))
    counting = _counting(compressor)
    with pytest.raises(EmptyQueryError, match="empty"):
        compressor.compress_documents(documents, query)
    assert counting.encoded == []


def test_no_documents_give_no_documents(model: ColBERT) -> None:
    assert EdgeColbertRerank(model=Reranker(model)).compress_documents([], QUERY) == []


def test_a_non_document_is_named_and_nothing_changes(model: ColBERT, documents: list[Document]) -> None:
    mixed: list[Any] = [*documents[:2], "plain text", documents[2]]
    before = copy.deepcopy(mixed)
    with pytest.raises(InvalidDocumentError, match=r"documents\[2\] is a str"):
        EdgeColbertRerank(model=Reranker(model)).compress_documents(mixed, QUERY)
    assert mixed == before


@pytest.mark.parametrize("top_n", [0, -2, True, "3", 2.5])
def test_bad_top_n_is_refused(model: ColBERT, top_n: Any) -> None:
    with pytest.raises(ValidationError, match="top_n"):
        EdgeColbertRerank(model=Reranker(model), top_n=top_n)


@pytest.mark.asyncio
async def test_highlights_go_into_metadata_only_on_request(model: ColBERT, documents: list[Document]) -> None:
    plain = EdgeColbertRerank(model=Reranker(model)).compress_documents(documents, QUERY)
    assert all(HIGHLIGHTS_KEY not in doc.metadata for doc in plain)
    compressor = EdgeColbertRerank(model=Reranker(model), highlight=True)
    ranked = compressor.compress_documents(documents, QUERY)
    assert [(doc.id, doc.metadata[SCORE_KEY]) for doc in ranked] == [(doc.id, doc.metadata[SCORE_KEY]) for doc in plain]
    assert_metadata_highlights(
        model, QUERY, [doc.page_content for doc in ranked], [doc.metadata[HIGHLIGHTS_KEY] for doc in ranked]
    )
    assert await compressor.acompress_documents(documents, QUERY) == ranked
    assert all(HIGHLIGHTS_KEY not in doc.metadata for doc in documents)  # the caller's documents are left alone
    with pytest.raises(ValidationError, match="highlight"):
        EdgeColbertRerank(model=Reranker(model), highlight="yes")


def test_old_model_keywords_still_work_with_a_deprecation_warning(model: ColBERT, documents: list[Document]) -> None:
    expected = EdgeColbertRerank(model=Reranker(model), top_n=None).compress_documents(documents, QUERY)
    with pytest.warns(DeprecationWarning, match="model_name_or_path= is deprecated"):
        by_name = EdgeColbertRerank(model_name_or_path=model.name, top_n=None)
    with pytest.warns(DeprecationWarning, match="reranker= is deprecated"):
        by_reranker = EdgeColbertRerank(reranker=Reranker(model), top_n=None)
    for compressor in (by_name, by_reranker):
        assert isinstance(compressor.model, Reranker) and compressor.reranker is compressor.model
        ranked = compressor.compress_documents(documents, QUERY)
        assert [doc.metadata[SCORE_KEY] for doc in ranked] == pytest.approx(
            [doc.metadata[SCORE_KEY] for doc in expected], rel=1e-5
        )


def test_a_model_under_two_names_is_refused(model: ColBERT) -> None:
    with pytest.raises(ValidationError, match="give model= only"):
        EdgeColbertRerank(model=Reranker(model), model_name_or_path=model.name)
    with pytest.raises(ValidationError, match="loaded already"):
        EdgeColbertRerank(model=Reranker(model), model_kwargs={"device": "cpu"})


def test_unknown_option_is_refused(model: ColBERT) -> None:
    with pytest.raises(ValidationError, match="top_k"):
        EdgeColbertRerank(model=Reranker(model), top_k=3)


def test_store_with_another_model_is_refused(tmp_path: Path, model: ColBERT, other_model: ColBERT) -> None:
    with open_store("edge", tmp_path, model) as store, pytest.raises(ModelMismatchError, match="encodes differently"):
        EdgeColbertRerank(model=Reranker(other_model), store=store)


# ---- documents held by a store ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> Any:
    if request.param == "qdrant":
        pytest.importorskip("qdrant_client")
    texts, ids, metadatas = corpus(30)
    with open_store(request.param, tmp_path_factory.mktemp("store"), model) as opened:
        opened.add(texts, ids, metadatas)
        yield opened


def test_stored_documents_are_ranked_from_the_store_without_encoding(store: Any, documents: list[Document]) -> None:
    compressor = EdgeColbertRerank(store=store, top_n=None)
    counting = _counting(compressor)
    ranked = compressor.compress_documents(documents, QUERY)
    assert counting.encoded == []
    hits = store.rerank(QUERY, [doc.id for doc in documents])
    assert [doc.id for doc in ranked] == [hit.id for hit in hits]
    assert [doc.metadata[SCORE_KEY] for doc in ranked] == pytest.approx([hit.score for hit in hits])
    assert [doc.metadata["rank"] for doc in ranked] == [int(hit.id.split("-")[1]) for hit in hits]


@pytest.mark.asyncio
async def test_async_stored_documents_are_not_encoded(store: Any, documents: list[Document]) -> None:
    compressor = EdgeColbertRerank(store=store, top_n=4)
    counting = _counting(compressor)
    ranked = await compressor.acompress_documents(documents, QUERY)
    assert counting.encoded == []
    assert [doc.id for doc in ranked] == [hit.id for hit in store.rerank(QUERY, [doc.id for doc in documents], top_k=4)]


def test_stored_documents_are_highlighted_from_their_text(store: Any, documents: list[Document]) -> None:
    ranked = EdgeColbertRerank(store=store, highlight=True).compress_documents(documents, QUERY)
    assert [doc.id for doc in ranked] == [hit.id for hit in store.rerank(QUERY, [doc.id for doc in documents], top_k=3)]
    assert_metadata_highlights(
        store.model, QUERY, [doc.page_content for doc in ranked], [doc.metadata[HIGHLIGHTS_KEY] for doc in ranked]
    )


def test_stored_and_new_documents_make_one_ranking(store: Any, documents: list[Document]) -> None:
    new = [
        Document(page_content="violins and cellos in a short text about violins"),
        Document(id="not-stored", page_content="comets seen in year 3000"),
    ]
    candidates = [*documents[:6], *new]
    compressor = EdgeColbertRerank(store=store, top_n=None)
    counting = _counting(compressor)
    ranked = compressor.compress_documents(candidates, QUERY)
    assert sorted(counting.encoded) == sorted(doc.page_content for doc in new)
    scores = [doc.metadata[SCORE_KEY] for doc in ranked]
    assert scores == sorted(scores, reverse=True)
    stored = {hit.id: hit.score for hit in store.rerank(QUERY, [doc.id for doc in documents[:6]])}
    encoded = {r.document: r.score for r in Reranker(store.model).rerank(QUERY, _texts(new))}
    for doc in ranked:
        expected = stored[doc.id] if doc.id in stored else encoded[doc.page_content]
        # Stored vectors are float16: the same document scores the same up to that rounding.
        assert doc.metadata[SCORE_KEY] == pytest.approx(expected, rel=1e-6 if doc.id not in stored else 1e-2)
    assert {doc.page_content for doc in ranked} == set(_texts(candidates))


def test_a_users_own_metadata_ids_do_not_hide_the_stored_id(
    store: Any, documents: list[Document], caplog: pytest.LogCaptureFixture
) -> None:
    # The user's documents carry their own "doc_id" / "id"; Document.id is the id the store gave them.
    candidates = [
        Document(id=doc.id, page_content=doc.page_content, metadata={"doc_id": f"user-{i}", "id": i + 1000})
        for i, doc in enumerate(documents[:3])
    ]
    compressor = EdgeColbertRerank(store=store, top_n=None)
    counting = _counting(compressor)
    with caplog.at_level(logging.INFO, logger="edgecolbert.scoring.reranker"):
        ranked = compressor.compress_documents(candidates, QUERY)
    assert counting.encoded == []
    assert [record.getMessage() for record in caplog.records] == [
        f"Reranked 3 documents: 3 scored from vectors stored in {store.where}, 0 encoded."
    ]
    assert [doc.metadata["doc_id"] for doc in ranked] == [
        f"user-{int(hit.id.split('-')[1])}" for hit in store.rerank(QUERY, [doc.id for doc in candidates])
    ]


def test_only_store_ids_find_stored_documents(store: Any, documents: list[Document]) -> None:
    # langchain-qdrant's point id in metadata["_id"] is the store's; a user's metadata["id"] or ["doc_id"] is not,
    # and must not shadow it.
    by_qdrant_key = Document(
        page_content=documents[0].page_content, metadata={"_id": documents[0].id, "doc_id": "user-0", "id": 7}
    )
    by_user_key = Document(page_content=documents[1].page_content, metadata={"id": documents[1].id})
    compressor = EdgeColbertRerank(store=store, top_n=None)
    counting = _counting(compressor)
    ranked = compressor.compress_documents([by_qdrant_key, by_user_key], QUERY)
    assert counting.encoded == [by_user_key.page_content]
    assert len(ranked) == 2


def test_a_stored_id_with_other_text_is_encoded(store: Any, documents: list[Document]) -> None:
    changed = Document(id=documents[0].id, page_content="a different passage about comets, not the stored one")
    compressor = EdgeColbertRerank(store=store, top_n=None)
    counting = _counting(compressor)
    ranked = compressor.compress_documents([changed, documents[1]], QUERY)
    assert counting.encoded == [changed.page_content]
    by_text = {doc.page_content: doc.metadata[SCORE_KEY] for doc in ranked}
    assert by_text[changed.page_content] == pytest.approx(
        Reranker(store.model).rerank(QUERY, [changed.page_content])[0].score
    )


def test_repeated_stored_documents_each_come_back(store: Any, documents: list[Document]) -> None:
    candidates = [documents[0], documents[1], documents[0]]
    ranked = EdgeColbertRerank(store=store, top_n=None).compress_documents(candidates, QUERY)
    assert sorted(doc.id for doc in ranked) == sorted(doc.id for doc in candidates)
