"""The service under concurrent load: every answer correct, /health answering, a full queue refused."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from edgecolbert import ColBERT, Reranker
from edgecolbert.scoring.reranker import RerankResults
from edgecolbert.serving.app import ServiceLimits, create_app, serve_in_background
from store_fixtures import TOPICS

WORDS = TOPICS + ["orbit", "bridge", "lantern", "harbor", "meadow", "glacier", "quartz", "ember"]


def _request(i: int) -> dict[str, Any]:
    """A distinct query and candidate list per request, so a mixed-up answer cannot pass."""
    documents = [
        f"{WORDS[(i + j) % len(WORDS)]} and {WORDS[(i * 3 + j * 5) % len(WORDS)]} in passage {i}-{j}"
        for j in range(3 + i % 5)
    ]
    return {"query": f"{WORDS[i % len(WORDS)]} near the {WORDS[(i * 7) % len(WORDS)]}", "documents": documents}


async def _fire(url: str, bodies: Sequence[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:
        return await asyncio.gather(*(client.post("/v1/rerank", json=body) for body in bodies))


@pytest.mark.slow
def test_200_concurrent_reranks_all_answer_correctly(model: ColBERT) -> None:
    bodies = [_request(i) for i in range(200)]
    app = create_app(reranker=Reranker(model), limits=ServiceLimits(workers=2))
    with serve_in_background(app) as url:
        responses = asyncio.run(_fire(url, bodies))
    direct = Reranker(model, cache_size=0)
    # Off the main thread, as the service runs it: on a busy 2-core host, torch's parallel sections
    # started from the main thread were measured 15x slower than from a worker thread.
    with ThreadPoolExecutor(1) as pool:
        expected_results = list(pool.map(lambda body: direct.rerank(body["query"], body["documents"]), bodies))
    for expected, response in zip(expected_results, responses):
        assert response.status_code == 200, response.text
        got = {result["index"]: result["relevance_score"] for result in response.json()["results"]}
        assert got == pytest.approx({result.index: result.score for result in expected}, abs=1e-4)


class GatedReranker(Reranker):
    """Blocks every rerank until the test opens the gate, to hold the worker pool full."""

    def __init__(self, model: ColBERT) -> None:
        super().__init__(model)
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def rerank(self, query: str, documents: Sequence[str], top_k: int | None = None) -> RerankResults:
        self.entered.release()
        if not self.gate.wait(timeout=120):
            raise TimeoutError("the test never opened the gate")
        return super().rerank(query, documents, top_k)


async def _wait_for(condition: Any, what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_health_answers_and_a_full_queue_is_refused_while_the_pool_is_busy(model: ColBERT) -> None:
    reranker = GatedReranker(model)
    app = create_app(reranker=reranker, limits=ServiceLimits(workers=1, max_pending=2))
    service = app.state.service
    body = {"query": "cats", "documents": ["cats and dogs", "rivers"]}

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            held = [asyncio.create_task(client.post("/v1/rerank", json=body)) for _ in range(2)]
            await _wait_for(lambda: service.pending == 2, "two requests in the pool")
            assert reranker.entered.acquire(timeout=60), "the one worker never started"

            health = await client.get("/health", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            refused = await client.post("/v1/rerank", json=body)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1" and "busy" in refused.json()["detail"]
            assert not any(task.done() for task in held), "the gate is shut: nothing can have finished"

            reranker.gate.set()
            answered = await asyncio.gather(*held)
            assert [response.status_code for response in answered] == [200, 200]
            assert answered[0].json()["results"] == answered[1].json()["results"]

    with serve_in_background(app) as url:
        try:
            asyncio.run(scenario(url))
        finally:
            reranker.gate.set()
