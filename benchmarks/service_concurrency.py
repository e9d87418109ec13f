"""The rerank service under concurrent load: latency, throughput, /health, against the library called directly.

Starts ``edgecolbert serve`` on loopback in a child process (so the client's own work does not share
the server's interpreter) and fires ``--requests`` rerank requests at once from an httpx AsyncClient
(``--concurrency`` bounds how many are in flight). Each request reranks ``--documents`` SciFact abstracts
(title and text) drawn at random from
the first ``--pool`` of the corpus for a SciFact test query; without ../shared it falls back to
generated text and the tiny test model. The model is a random-weight checkpoint of the exact
mxbai-edge-colbert-v0-17m shape (speed does not depend on weights).

Two passes over the same requests:
  cold  the service's embedding cache is empty: each distinct abstract is encoded once, on first use
  warm  the same requests again: every abstract is cached, only queries are encoded
The baseline is the library's ``Reranker.rerank`` on the same requests in the same order, one at a
time in one worker thread (with its own cache, cold then warm): the service's throughput divided by
it is what the HTTP layer, JSON and the pool cost or gain. A probe calls ``/health`` every 50 ms during
each pass and reports its worst latency.

    python benchmarks/service_concurrency.py                     # 200 requests x 20 abstracts
    python benchmarks/service_concurrency.py --workers 2 --documents 50 --pool 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from benchkit import SCIFACT, SHARED, ForeignCpu, cached_checkpoint, cpu_model, prepare_run

from edgecolbert import ColBERT, Reranker


def load_inputs(pool: int) -> tuple[list[str], list[str], str]:
    """Candidate texts, queries and where they came from."""
    if SCIFACT.is_dir():
        from edgecolbert.sources.beir import iter_corpus, load_queries

        corpus = iter_corpus(SCIFACT)
        texts = [next(corpus).full_text for _ in range(pool)]
        return texts, list(load_queries(SCIFACT).values()), f"SciFact (first {pool} abstracts)"
    rng = random.Random(0)
    vocabulary = [f"term{i}" for i in range(2000)]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(80, 250))) for _ in range(pool)]
    queries = [" ".join(rng.choices(vocabulary, k=rng.randint(4, 12))) for _ in range(500)]
    return texts, queries, "generated text (../shared is absent)"


def model_folder() -> tuple[Path, str]:
    if (SHARED / "models" / "modernbert-tokenizer").is_dir():
        return cached_checkpoint("17m"), "mxbai-edge-colbert-v0-17m shape"
    from checkpoints import build_stanford_checkpoint

    folder = build_stanford_checkpoint(Path(tempfile.mkdtemp()) / "tiny", seed=0)
    return folder, "tiny 24-dim test model (../shared is absent)"


@contextmanager
def running_service(model: Path, args: argparse.Namespace, max_pending: int) -> Iterator[str]:
    """``edgecolbert serve`` in a child process on a free loopback port, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "edgecolbert.cli", "serve", "--model", str(model), "--device", "cpu"]
    command += ["--port", str(port), "--workers", str(args.workers), "--max-pending", str(max_pending)]
    command += ["--log-level", "warning"]
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the service exited with status {server.returncode}; its log is above.")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("error: the service did not answer /health within 5 minutes.")


def make_requests(texts: list[str], queries: list[str], n: int, documents: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    return [{"query": queries[i % len(queries)], "documents": rng.sample(texts, documents)} for i in range(n)]


async def fire(url: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[list[float], float, list[float]]:
    """Per-request latencies (s), wall time of the pass (s) and /health latencies during it."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=3600) as client:

        async def one(body: dict[str, Any]) -> float:
            async with gate:
                started = time.perf_counter()
                response = await client.post("/v1/rerank", json=body)
                elapsed = time.perf_counter() - started
            response.raise_for_status()
            return elapsed

        health: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                (await client.get("/health")).raise_for_status()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe())
        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(body) for body in bodies))
        wall = time.perf_counter() - started
        done.set()
        await prober
    return list(latencies), wall, health


def direct_pass(reranker: Reranker, bodies: list[dict[str, Any]]) -> float:
    # One worker thread, as the service runs the model (torch's main-thread parallel sections are
    # much slower on a contended host).
    with ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        list(pool.map(lambda body: reranker.rerank(body["query"], body["documents"]), bodies))
        return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--documents", type=int, default=20, help="candidates per request")
    parser.add_argument("--pool", type=int, default=500, help="abstracts the candidates are drawn from")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="the service's model pool size")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prepare_run(args.threads)
    texts, queries, source = load_inputs(args.pool)
    folder, model_label = model_folder()
    bodies = make_requests(texts, queries, args.requests, args.documents)
    concurrency = args.concurrency or args.requests
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, torch threads {args.threads}, service workers {args.workers}")
    print(f"model: {model_label}; candidates: {source}")
    print(f"{args.requests} requests x {args.documents} candidates, {concurrency} in flight\n")

    rows = []
    with running_service(folder, args, max_pending=concurrency) as url:
        for name in ("cold", "warm"):
            with ForeignCpu() as foreign:
                latencies, wall, health = asyncio.run(fire(url, bodies, concurrency))
            rows.append((name, latencies, wall, health, foreign.share))
    baseline = Reranker(ColBERT.from_pretrained(folder, device="cpu"))
    direct = {name: direct_pass(baseline, bodies) for name in ("cold", "warm")}

    print(
        f"{'pass':<5} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8} {'direct req/s':>13} {'ratio':>6} {'health max ms':>14}"
    )
    for name, latencies, wall, health, foreign_share in rows:
        throughput = len(latencies) / wall
        direct_throughput = len(bodies) / direct[name]
        print(
            f"{name:<5} {percentile(latencies, 0.5) * 1e3:>9.1f} {percentile(latencies, 0.99) * 1e3:>9.1f} "
            f"{throughput:>8.1f} {direct_throughput:>13.1f} {throughput / direct_throughput:>6.2f} "
            f"{max(health) * 1e3:>14.1f}   (other processes: "
            f"{'n/a' if foreign_share is None else f'{foreign_share:.0%}'} of the CPUs, this client included)"
        )
    print(
        "\nratio: the service's requests/s over the library's own, same requests; latency is client-side "
        "and includes queueing behind the other in-flight requests."
    )


if __name__ == "__main__":
    sys.exit(main())
