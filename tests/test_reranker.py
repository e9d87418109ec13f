"""Reranker behaviour on the real-weights MiniLM late-interaction checkpoint."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import edgecolbert
from checkpoints import requires_minilm
from edgecolbert import EmptyQueryError, InvalidDocumentError, InvalidInputError, Reranker

pytestmark = requires_minilm

CANDIDATES = [
    "Bananas are a yellow fruit rich in potassium.",
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower stands in Paris.",
    "Berlin is the capital of Germany.",
]


@pytest.fixture(scope="module")
def minilm_path(shared_minilm: Path) -> Path:
    return shared_minilm


@pytest.fixture(scope="module")
def model(minilm_path: Path) -> edgecolbert.ColBERT:
    return edgecolbert.ColBERT.from_pretrained(minilm_path, device="cpu")


class CountingModel:
    """Wraps a model to count which documents reach the encoder."""

    def __init__(self, model: edgecolbert.ColBERT) -> None:
        self._model = model
        self.encoded: list[str] = []
        self.threads: set[int] = set()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._model, name)

    def encode_documents(self, texts, **kwargs):  # type: ignore[no-untyped-def]
        self.encoded.extend(texts)
        self.threads.add(threading.get_ident())
        return self._model.encode_documents(texts, **kwargs)


def _reranker(model: edgecolbert.ColBERT, **kwargs) -> tuple[Reranker, CountingModel]:  # type: ignore[no-untyped-def]
    counting = CountingModel(model)
    reranker = Reranker(model, **kwargs)
    reranker.model = counting  # type: ignore[assignment]
    return reranker, counting


def test_relevant_document_ranks_first(model: edgecolbert.ColBERT) -> None:
    results = Reranker(model).rerank("What is the capital of France?", CANDIDATES)
    assert results[0].index == 1
    assert results[0].text == results[0].document == CANDIDATES[1]
    assert sorted(r.index for r in results) == list(range(len(CANDIDATES)))
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[-1].index == 0  # the banana sentence shares nothing with the query


def test_scores_are_raw_maxsim_and_normalized_by_query_length(model: edgecolbert.ColBERT) -> None:
    query = "capital of France"
    results = Reranker(model).rerank(query, CANDIDATES)
    query_vectors = model.encode_query(query)
    expected = edgecolbert.maxsim(query_vectors, model.encode_documents(CANDIDATES))
    for result in results:
        assert result.score == pytest.approx(float(expected[result.index]), rel=1e-5)
        assert result.normalized_score == pytest.approx(result.score / len(query_vectors), rel=1e-6)
        assert -1.0 <= result.normalized_score <= 1.0


def test_top_k_keeps_the_best(model: edgecolbert.ColBERT) -> None:
    reranker = Reranker(model)
    everything = reranker.rerank("capital of France", CANDIDATES)
    best_two = reranker.rerank("capital of France", CANDIDATES, top_k=2)
    assert [r.index for r in best_two] == [r.index for r in everything][:2]
    assert [r.index for r in everything.top_k(3)] == [r.index for r in everything][:3]
    assert len(reranker.rerank("capital of France", CANDIDATES, top_k=10)) == len(CANDIDATES)
    assert everything.to_list()[0]["index"] == everything[0].index


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_blank_query_is_rejected(model: edgecolbert.ColBERT, query: str) -> None:
    with pytest.raises(EmptyQueryError, match="empty") as caught:
        Reranker(model).rerank(query, CANDIDATES)
    assert isinstance(caught.value, ValueError)


def test_non_string_candidate_names_its_position(model: edgecolbert.ColBERT) -> None:
    with pytest.raises(InvalidDocumentError, match="position 2") as caught:
        Reranker(model).rerank("query", ["a", "b", 3, "d"])  # type: ignore[list-item]
    assert isinstance(caught.value, TypeError)


def test_documents_with_ids_and_metadata_pass_them_to_their_results(model: edgecolbert.ColBERT) -> None:
    documents = [
        CANDIDATES[0],
        {"text": CANDIDATES[1], "id": 7, "metadata": {"lang": "en"}},
        edgecolbert.StoreDocument(text=CANDIDATES[2], id="tower", metadata={"kind": "landmark"}),
    ]
    results = Reranker(model).rerank("capital of France", documents)
    plain = Reranker(model).rerank("capital of France", CANDIDATES[:3])
    assert [(r.index, r.score) for r in results] == [(r.index, r.score) for r in plain]
    by_index = {r.index: r for r in results}
    assert (by_index[0].id, by_index[0].metadata, by_index[0].text) == (None, {}, CANDIDATES[0])
    assert (by_index[1].id, by_index[1].metadata) == ("7", {"lang": "en"})
    assert (by_index[2].id, by_index[2].metadata) == ("tower", {"kind": "landmark"})
    assert (results.stored, results.encoded) == (0, 3)
    with pytest.raises(InvalidInputError, match="needs a 'text' key"):
        Reranker(model).rerank("query", [{"id": 1}])
    with pytest.raises(InvalidDocumentError, match="position 1 is int"):
        Reranker(model).rerank("query", ["a", 1])  # type: ignore[list-item]
    with pytest.raises(InvalidDocumentError, match="wrap it in a list"):
        Reranker(model).rerank("query", documents[2])  # type: ignore[arg-type]


def test_other_bad_arguments(model: edgecolbert.ColBERT) -> None:
    reranker = Reranker(model)
    with pytest.raises(TypeError):
        reranker.rerank(42, CANDIDATES)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single string"):
        reranker.rerank("query", "one string is not a list")  # type: ignore[arg-type]
    for bad in (0, -3, True, 1.5):
        with pytest.raises(InvalidInputError, match="top_k"):
            reranker.rerank("query", CANDIDATES, top_k=bad)  # type: ignore[arg-type]


def test_no_candidates_gives_no_results(model: edgecolbert.ColBERT) -> None:
    assert len(Reranker(model).rerank("query", [])) == 0


def test_truncation_warns_once_per_call(model: edgecolbert.ColBERT, caplog: pytest.LogCaptureFixture) -> None:
    reranker = Reranker(model, cache_size=0)
    long_documents = ["word " * 600, "other " * 700, "short"]
    with caplog.at_level(logging.WARNING, logger="edgecolbert"):
        reranker.rerank("query", long_documents)
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 of 3 documents" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgecolbert"):
        reranker.rerank("query", ["short text"])
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_cache_avoids_re_encoding(model: edgecolbert.ColBERT) -> None:
    reranker, counting = _reranker(model, cache_size=100)
    first = reranker.rerank("capital of France", CANDIDATES + [CANDIDATES[1]])
    assert sorted(counting.encoded) == sorted(CANDIDATES)  # the duplicate is encoded once
    second = reranker.rerank("largest city in Germany", CANDIDATES)
    assert len(counting.encoded) == len(CANDIDATES)
    assert reranker.cache.hits >= len(CANDIDATES)
    uncached = Reranker(model, cache_size=0).rerank("largest city in Germany", CANDIDATES)
    assert [(r.index, round(r.score, 5)) for r in second] == [(r.index, round(r.score, 5)) for r in uncached]
    assert first[0].index == 1


def test_cache_can_be_turned_off_and_is_bounded(model: edgecolbert.ColBERT) -> None:
    off, counting = _reranker(model, cache_size=0)
    off.rerank("query", CANDIDATES)
    off.rerank("query", CANDIDATES)
    assert len(counting.encoded) == 2 * len(CANDIDATES)
    assert len(off.cache) == 0
    bounded = Reranker(model, cache_size=2)
    bounded.rerank("query", CANDIDATES)
    assert len(bounded.cache) == 2
    with pytest.raises(InvalidInputError):
        Reranker(model, cache_size=-1)


def test_cached_vectors_are_read_only(model: edgecolbert.ColBERT) -> None:
    reranker = Reranker(model)
    vectors = reranker.document_vectors(CANDIDATES[:1])
    cached = reranker.cache.get((model.fingerprint, edgecolbert.content_hash(CANDIDATES[0])))
    assert cached is not None and not cached.flags.writeable
    vectors.data[:] = 0  # a caller scribbling on its copy must not reach the cache
    assert np.abs(reranker.document_vectors(CANDIDATES[:1]).data).sum() > 0


def test_arerank_matches_rerank_and_runs_off_the_event_loop(model: edgecolbert.ColBERT) -> None:
    reranker, counting = _reranker(model, cache_size=0)
    expected = Reranker(model).rerank("capital of France", CANDIDATES)
    loop_ran_meanwhile = threading.Event()

    async def scenario() -> edgecolbert.RerankResults:
        original = counting.encode_documents

        def blocking_encode(texts, **kwargs):  # type: ignore[no-untyped-def]
            # If arerank blocked the loop, the ticker below could never set the event.
            assert loop_ran_meanwhile.wait(timeout=30), "the event loop was blocked during arerank"
            return original(texts, **kwargs)

        counting.encode_documents = blocking_encode  # type: ignore[method-assign]
        task = asyncio.create_task(reranker.arerank("capital of France", CANDIDATES))
        await asyncio.sleep(0)
        loop_ran_meanwhile.set()
        return await task

    results = asyncio.run(scenario())
    assert [r.index for r in results] == [r.index for r in expected]
    assert threading.main_thread().ident not in counting.threads


@pytest.mark.slow
def test_concurrent_threads_match_serial(model: edgecolbert.ColBERT) -> None:
    queries = [f"capital of country number {i}" for i in range(8)] + ["What is the capital of France?"] * 4
    serial = Reranker(model, cache_size=0)
    expected = [[(r.index, r.score) for r in serial.rerank(q, CANDIDATES)] for q in queries]
    shared = Reranker(model, cache_size=0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda q: shared.rerank(q, CANDIDATES), queries))
    for want, got in zip(expected, results):
        assert [index for index, _ in want] == [r.index for r in got]
        np.testing.assert_allclose([score for _, score in want], [r.score for r in got], rtol=1e-5)


def test_odd_unicode_is_encoded_not_rejected(model: edgecolbert.ColBERT) -> None:
    odd = ["nul\x00byte", "lone \ud800 surrogate", "\u200b\u200b", "🙂" * 50, "\r\n\x0b\x0c", "x" * 100_000]
    results = Reranker(model, cache_size=0).rerank("surrogate", odd)
    assert sorted(r.index for r in results) == list(range(len(odd)))
    assert all(np.isfinite(r.score) for r in results)
    replaced = model.encode_documents(["lone \ufffd surrogate"])
    np.testing.assert_allclose(model.encode_documents([odd[1]]).data, replaced.data, atol=1e-6)


def test_present_reads_a_result_field_and_names_a_missing_one() -> None:
    from edgecolbert.documents import Result, present

    result = Result(id=None, text="a passage", score=3.0, normalized_score=0.75, index=2)
    assert present(result.index, "index") == 2
    assert present(result.normalized_score, "normalized_score") == 0.75
    with pytest.raises(edgecolbert.EdgeColbertError, match="came without its id"):
        present(result.id, "id")
