"""Many threads and tasks at once get exactly what serial calls get, without deadlock, with a bounded cache.

Every wait has a timeout, so a deadlock fails the test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typing_extensions import Self

from edgecolbert import ColBERT, Reranker
from store_fixtures import TOPICS, corpus, open_store

T = TypeVar("T")
THREADS = 8
TASKS = 100
JOIN_TIMEOUT_S = 180

QUERIES = [f"{topic} seen in year {year}" for topic in TOPICS for year in (3, 17, 42)]


def candidate_sets() -> list[list[str]]:
    texts, _, _ = corpus(40)
    # Overlapping sets, so threads share cache entries and evict each other's.
    return [texts[i : i + 6] for i in range(0, 30, 3)]


def run_in_threads(jobs: list[Callable[[], T]], threads: int = THREADS) -> list[T]:
    """Run ``jobs`` on ``threads`` daemon threads released at once; results in job order."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT_S)

    def worker(offset: int) -> None:
        try:
            start.wait()
            for index in range(offset, len(jobs), threads):
                results[index] = jobs[index]()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, on the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in workers), "a worker did not finish: deadlock or hang"
    if errors:
        raise errors[0]
    return results


def gather_with_timeout(coroutines: list[Any]) -> list[Any]:
    async def everything() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(*coroutines), timeout=JOIN_TIMEOUT_S)

    return asyncio.run(everything())


@pytest.fixture
def reranker(model: ColBERT) -> Reranker:
    # Smaller than the candidates in play, so entries are evicted while other threads read them.
    return Reranker(model, cache_size=16)


class CacheWatch:
    """Samples the cache size from its own thread while the calls run."""

    def __init__(self, reranker: Reranker) -> None:
        self.reranker = reranker
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.largest = max(self.largest, len(self.reranker.cache))
            self._stop.wait(0.001)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def rerank_jobs(reranker: Reranker) -> Iterator[tuple[str, list[str]]]:
    sets = candidate_sets()
    for index, query in enumerate(QUERIES * 2):
        yield query, sets[index % len(sets)]


def as_plain(results: Any) -> list[tuple[int, float]]:
    return [(r.index, round(r.score, 4)) for r in results]


def serial_reranks(model: ColBERT, jobs: list[tuple[str, list[str]]]) -> list[list[tuple[int, float]]]:
    one_at_a_time = Reranker(model)
    return [as_plain(one_at_a_time.rerank(query, docs)) for query, docs in jobs]


@pytest.mark.slow
def test_threads_rerank_exactly_as_serial_calls(reranker: Reranker, model: ColBERT) -> None:
    jobs = list(rerank_jobs(reranker))
    serial = serial_reranks(model, jobs)
    with CacheWatch(reranker) as watch:
        parallel = run_in_threads([lambda q=q, d=d: as_plain(reranker.rerank(q, d)) for q, d in jobs])
    assert parallel == serial
    assert 0 < watch.largest <= reranker.cache.max_documents
    assert len(reranker.cache) <= reranker.cache.max_documents
    assert reranker.cache.hits > 0  # the cache was shared, not bypassed


@pytest.mark.slow
def test_async_tasks_rerank_exactly_as_serial_calls(reranker: Reranker, model: ColBERT) -> None:
    jobs = (list(rerank_jobs(reranker)) * 3)[:TASKS]
    serial = serial_reranks(model, jobs)
    with CacheWatch(reranker) as watch:
        results = gather_with_timeout([reranker.arerank(query, docs) for query, docs in jobs])
    assert [as_plain(result) for result in results] == serial
    assert watch.largest <= reranker.cache.max_documents


def test_one_cache_for_many_threads_never_exceeds_its_limit(model: ColBERT) -> None:
    reranker = Reranker(model, cache_size=5)
    sets = candidate_sets()
    with CacheWatch(reranker) as watch:
        run_in_threads([lambda s=s: reranker.document_vectors(s) for s in sets * 4])
    assert watch.largest <= 5 and len(reranker.cache) <= 5


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path, model: ColBERT) -> Iterator[Any]:
    opened = open_store(request.param, tmp_path, model)
    texts, ids, metadatas = corpus(60)
    opened.add(texts, ids=ids, metadatas=metadatas)
    yield opened
    opened.close()


def search_jobs() -> list[dict[str, Any]]:
    jobs = []
    for index, query in enumerate(QUERIES):
        jobs.append({"query": query, "top_k": 5})
        jobs.append({"query": query, "top_k": 3, "filter": {"topic": TOPICS[index % len(TOPICS)]}})
    return jobs


def hits_of(hits: list[Any]) -> list[tuple[str, float]]:
    return [(hit.id, round(hit.score, 4)) for hit in hits]


@pytest.mark.slow
def test_threads_search_and_rerank_a_store_exactly_as_serial_calls(store: Any) -> None:
    jobs = search_jobs()
    ids = [f"doc-{i}" for i in range(0, 60, 4)]
    serial_search = [hits_of(store.search(**job)) for job in jobs]
    serial_rerank = [hits_of(store.rerank(job["query"], ids)) for job in jobs]
    calls: list[Callable[[], Any]] = [lambda job=job: hits_of(store.search(**job)) for job in jobs]
    calls += [lambda job=job: hits_of(store.rerank(job["query"], ids)) for job in jobs]
    assert run_in_threads(calls) == serial_search + serial_rerank


@pytest.mark.slow
def test_async_tasks_search_a_store_exactly_as_serial_calls(store: Any) -> None:
    unique = search_jobs()
    serial = [hits_of(store.search(**job)) for job in unique]
    jobs = [index % len(unique) for index in range(TASKS)]
    results = gather_with_timeout([store.asearch(**unique[job]) for job in jobs])
    assert [hits_of(result) for result in results] == [serial[job] for job in jobs]


def test_writes_and_searches_interleave_without_loss(store: Any) -> None:
    new = [(f"new-{i}", f"fresh note {i} about comets and rivers") for i in range(40)]
    writes = [lambda pair=pair: store.add([pair[1]], ids=[pair[0]]) for pair in new]
    reads = [lambda job=job: store.search(**job) for job in search_jobs()]
    run_in_threads([call for pair in zip(writes, reads * 2) for call in pair])
    assert store.count() == 60 + len(new)
    assert [hit.id for hit in store.get([doc_id for doc_id, _ in new])] == [doc_id for doc_id, _ in new]
