"""EdgeStore indexing throughput and search latency at scale, against bare encoding and numpy MaxSim.

One run on one machine, with a random-weight checkpoint of the exact mxbai-edge-colbert-v0 shape
(speed does not depend on weights):

1. Indexing: the first ``--index-docs`` SciFact documents, encoded bare
   (``encode_documents``, one call; and in the 256-document calls ``add_documents`` makes) and
   written into a fresh float16 EdgeStore with ``add_documents`` (encoding, BM25, upsert).
   Repeats are interleaved, each store write into a fresh folder.
2. Search at scale: ``--docs`` synthetic documents bulk-loaded through the engine into two stores,
   48 dims (the model's) and zero-padded to 64. Token counts per document are drawn from the exact
   number of vectors the model keeps for real SciFact documents (tokenizer only: truncation at the
   document length and the punctuation skiplist applied); vectors are random normal, rows
   L2-normalised; texts for BM25 sample SciFact's words by their corpus frequency (Zipf-like).
   Real SciFact queries encoded by the model are timed, interleaved per query, as:
     bm25          the BM25 prefetch alone (engine query, ids only)
     engine-48     EdgeShard.query: BM25 prefetch + MaxSim in one engine query, pre-encoded query
     engine-64     the same on the 64-dim store
     search-48     EdgeStore.search end to end (query encoding, BM25 query embedding, payloads)
     search-64     the same on the 64-dim store (the default: padded to a multiple of 32)
     numpy-maxsim  edgecolbert.scoring.maxsim over the same candidates' float vectors held in RAM
     numpy-total   bm25 + gathering those vectors + maxsim + top 10
     first-stage-NAME  with ``--first-stages``: EdgeStore.search on the 64-dim store with that first stage
                   (bm25, muvera, hybrid-muvera; the MUVERA stages build that store with the default
                   FdeParams vector, written with each point)
   Engine timings return ids and scores only; search-48 also returns payloads. The numpy side holds
   the vectors as float32 unless memory is short (``--numpy-dtype``; float16 is cast when gathered).
   At 100,000 documents expect about 7 GB of disk for the two stores and 12-15 GB of resident memory.

    python benchmarks/store_search_and_indexing.py --docs 100000 --keep /tmp/edgecolbert-bench/stores
    python benchmarks/store_search_and_indexing.py --docs 3000 --index-docs 60 --queries 20  # quick look
    python benchmarks/store_search_and_indexing.py --first-stages bm25 muvera hybrid-muvera  # + first stages
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from benchkit import BENCH_ROOT, SCIFACT, ForeignCpu, cached_checkpoint, cpu_model, prepare_run, require_shared

import edgecolbert
from edgecolbert import ColBERT, MultiVectors, maxsim
from edgecolbert.sources.beir import Document, iter_corpus, load_qrels, load_queries
from edgecolbert.store import EdgeStore, StoreDocument
from edgecolbert.store.base import _resolve
from edgecolbert.store.engine import PreparedPoint
from edgecolbert.store.muvera_stage import document_encodings
from edgecolbert.store.schema import BM25, COLBERT, model_identity
from edgecolbert.store.stages import EVAL_FIRST_STAGES, MUVERA_STAGES

TOP_K = 10
STORE_BATCH = 256  # add_documents' default batch size
WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
CONTENDERS = ("bm25", "engine-48", "engine-64", "search-48", "search-64", "numpy-maxsim", "numpy-total")

# --------------------------------------------------------------------------- inputs


def load_search_queries(n: int) -> list[str]:
    """SciFact test queries first, then the other queries, ``n`` in all (fewer if SciFact has fewer)."""
    queries = load_queries(SCIFACT)
    order = [qid for qid in load_qrels(SCIFACT, "test") if qid in queries]
    tested = set(order)
    order += [qid for qid in queries if qid not in tested]
    return [queries[qid] for qid in order[:n]]


def log(message: str) -> None:
    rss = _status_gb("VmRSS")
    memory = "" if rss is None else f" (RSS {rss:.1f} GB)"
    print(f"[{time.strftime('%H:%M:%S')}] {message}{memory}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine


def _meminfo_gb(key: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def _status_gb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def blas_threads() -> list[str] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [f"{pool['internal_api']} {pool['num_threads']} threads ({pool['prefix']})" for pool in threadpool_info()]


def machine_info(threads: int) -> dict[str, Any]:
    cpu = cpu_model()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gb": _meminfo_gb("MemTotal"),
        "torch_threads": threads,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "qdrant_edge": metadata.version("qdrant-edge-py"),
        "edgecolbert": edgecolbert.__version__,
        "python": platform.python_version(),
        "thread_pools": blas_threads(),
    }


def folder_gb(path: Path) -> float:
    """Space the folder takes on disk (Qdrant preallocates sparse files, so not their apparent size)."""
    return sum(file.stat().st_blocks * 512 for file in path.rglob("*") if file.is_file()) / 2**30


# --------------------------------------------------------------------------- 1. indexing


def indexing(model: ColBERT, docs: list[Document], repeats: int, workdir: Path) -> dict[str, Any]:
    """docs/s of bare encoding and of EdgeStore.add_documents, interleaved per repeat."""
    texts = [doc.full_text for doc in docs]
    documents = [StoreDocument(text=doc.full_text, id=doc.id, metadata={"title": doc.title}) for doc in docs]
    fresh = iter(range(1_000_000))

    def bare(items: list[str]) -> float:
        start = time.perf_counter()
        model.encode_documents(items, batch_size=16)
        return time.perf_counter() - start

    def bare_chunked(items: list[str]) -> float:
        start = time.perf_counter()
        for first in range(0, len(items), STORE_BATCH):
            model.encode_documents(items[first : first + STORE_BATCH], batch_size=16)
        return time.perf_counter() - start

    def store(items: list[StoreDocument]) -> float:
        folder = workdir / f"index-{next(fresh)}"
        edge_store = EdgeStore(folder, model)  # float16, BM25 on: the defaults
        try:
            start = time.perf_counter()
            report = edge_store.add_documents(items, batch_size=STORE_BATCH)
            seconds = time.perf_counter() - start
        finally:
            edge_store.close()
            shutil.rmtree(folder, ignore_errors=True)
        if report.added != len({item.id for item in items}):
            raise RuntimeError(f"add_documents stored {report.added} of {len(items)} documents")
        return seconds

    runs: dict[str, Callable[[int | None], float]] = {
        "bare": lambda n: bare(texts[:n]),
        "bare-batched": lambda n: bare_chunked(texts[:n]),
        "store": lambda n: store(documents[:n]),
    }
    for run in runs.values():  # warm-up on a slice: first-call costs, not a full pass
        run(min(len(texts), 64))
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name, run in runs.items():
            rates[name].append(len(texts) / run(None))
        log(f"indexing repeat {repeat + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    sequences, truncated = model.tokenizer.token_ids(texts, "document")
    return {
        "docs": len(texts),
        "mean_doc_tokens": float(np.mean([len(ids) for ids in sequences])),
        "truncated_docs": truncated,
        "docs_per_s": {name: {"median": medians[name], "runs": rates[name]} for name in rates},
        "store_over_bare": medians["store"] / medians["bare"],
        "store_over_bare_batched": medians["store"] / medians["bare-batched"],
        "bare_batched_over_bare": medians["bare-batched"] / medians["bare"],
    }


# --------------------------------------------------------------------------- 2. synthetic corpus


@dataclass
class CorpusStats:
    """What the synthetic corpus copies from SciFact: vectors kept per document, words, word frequencies."""

    kept_vectors: np.ndarray  # per real document: vectors encode_documents keeps
    word_counts: np.ndarray  # per real document
    vocabulary: np.ndarray  # words, most frequent first
    cumulative: np.ndarray  # cumulative word probabilities, for inverse-CDF sampling


def corpus_stats(model: ColBERT, docs: list[Document]) -> CorpusStats:
    texts = [doc.full_text for doc in docs]
    sequences, _ = model.tokenizer.token_ids(texts, "document")
    skip = model.tokenizer.skiplist_ids
    kept = np.array([len(ids) - int(np.isin(ids, skip).sum()) for ids in sequences], dtype=np.int64)
    words = [WORD.findall(text.lower()) for text in texts]
    counts = Counter(word for doc_words in words for word in doc_words)
    vocabulary, frequency = zip(*counts.most_common())
    weights = np.array(frequency, dtype=np.float64)
    return CorpusStats(
        kept_vectors=kept,
        word_counts=np.array([max(1, len(doc_words)) for doc_words in words], dtype=np.int64),
        vocabulary=np.array(vocabulary, dtype=object),
        cumulative=np.cumsum(weights) / weights.sum(),
    )


@dataclass
class SyntheticCorpus:
    """Deterministic in ``seed``: a kept store is reused with vectors regenerated bit for bit."""

    stats: CorpusStats
    seed: int
    sources: np.ndarray  # the real document each synthetic one takes its lengths from
    offsets: np.ndarray
    vectors: np.ndarray  # packed [total_tokens, dim], unit rows, float32 or float16

    @classmethod
    def generate(cls, stats: CorpusStats, n_docs: int, dim: int, seed: int, dtype: str) -> SyntheticCorpus:
        sources = np.random.default_rng([seed, 0]).integers(0, stats.kept_vectors.size, size=n_docs)
        lengths = stats.kept_vectors[sources]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        vectors = np.empty((int(offsets[-1]), dim), dtype=dtype)
        rng = np.random.default_rng([seed, 2])
        chunk = np.empty((1 << 20, dim), dtype=np.float32)
        for start in range(0, vectors.shape[0], chunk.shape[0]):
            block = chunk[: min(chunk.shape[0], vectors.shape[0] - start)]
            rng.standard_normal(out=block, dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            vectors[start : start + block.shape[0]] = block
        return cls(stats, seed, sources, offsets, vectors)

    def __len__(self) -> int:
        return int(self.sources.size)

    def doc_vectors(self, index: int) -> np.ndarray:
        return np.asarray(self.vectors[self.offsets[index] : self.offsets[index + 1]], dtype=np.float32)

    def texts(self) -> Iterator[str]:
        """Words drawn by corpus frequency, as many as the source document has."""
        rng = np.random.default_rng([self.seed, 1])
        block = 1024
        for first in range(0, len(self), block):
            counts = self.stats.word_counts[self.sources[first : first + block]]
            picks = np.searchsorted(self.stats.cumulative, rng.random(int(counts.sum())), side="right")
            words = self.stats.vocabulary[np.minimum(picks, self.stats.vocabulary.size - 1)]
            for start, end in zip(np.cumsum(counts) - counts, np.cumsum(counts)):
                yield " ".join(words[start:end])

    def gather(self, ids: np.ndarray) -> MultiVectors:
        """The candidates' vectors as one packed float32 array, in the order of ``ids``."""
        starts = self.offsets[ids]
        lengths = self.offsets[ids + 1] - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return MultiVectors(np.asarray(self.vectors[rows], dtype=np.float32), offsets)


def store_folder(root: Path, n_docs: int, size: int, seed: int) -> Path:
    return root / f"synthetic-{n_docs}docs-{size}dims-seed{seed}"


def open_or_build(
    folder: Path, model: ColBERT, corpus: SyntheticCorpus, size: int, batch: int, keep: bool, muvera: bool = False
) -> tuple[EdgeStore, dict[str, Any]]:
    """The store in ``folder``: reused when a finished build with the same inputs is there, else built."""
    marker = folder.with_name(folder.name + ".done.json")
    fingerprint = {
        "docs": len(corpus),
        "vector_size": size,
        "seed": corpus.seed,
        "total_vectors": int(corpus.offsets[-1]),
        "model_identity": model_identity(model),
        **({"muvera": True} if muvera else {}),
    }
    if keep and marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("fingerprint") == fingerprint and folder.is_dir():
            start = time.perf_counter()
            store = EdgeStore(folder, model)
            load = dict(done["load"], reused=True, open_s=time.perf_counter() - start)
            return store, load
    marker.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    load = bulk_load(folder, model, corpus, size, batch, muvera)
    if keep:
        marker.write_text(json.dumps({"fingerprint": fingerprint, "load": load}, indent=2) + "\n", encoding="utf-8")
    start = time.perf_counter()
    store = EdgeStore(folder, model)
    return store, dict(load, reused=False, open_s=time.perf_counter() - start)


def bulk_load(
    folder: Path, model: ColBERT, corpus: SyntheticCorpus, size: int, batch: int, muvera: bool = False
) -> dict[str, Any]:
    """Upsert prepared points in batches, then merge segments; closed afterwards so the WAL is flushed."""
    store = EdgeStore(folder, model, datatype="float16", vector_size=size, muvera=muvera)
    seconds = {"texts_bm25_payload": 0.0, "vectors": 0.0, "muvera": 0.0, "upsert": 0.0}
    started = time.perf_counter()
    texts = corpus.texts()
    last_report = started
    for first in range(0, len(corpus), batch):
        points = []
        for index in range(first, min(first + batch, len(corpus))):
            tick = time.perf_counter()
            text = next(texts)
            item = _resolve(StoreDocument(text=text, id=index))
            payload = store._payload(item)
            bm25 = store._bm25_document(text)
            tock = time.perf_counter()
            vectors = store._storage_vectors(corpus.doc_vectors(index))
            seconds["vectors"] += time.perf_counter() - tock
            seconds["texts_bm25_payload"] += tock - tick
            points.append(PreparedPoint(point_id=item.point_id, colbert=vectors, payload=payload, bm25=bm25))
        tick = time.perf_counter()
        encodings = document_encodings(store.schema, [point.colbert for point in points])
        if encodings is not None:
            points = [replace(point, muvera=encoding) for point, encoding in zip(points, encodings)]
        seconds["muvera"] += time.perf_counter() - tick
        tick = time.perf_counter()
        store.engine.upsert(points)
        seconds["upsert"] += time.perf_counter() - tick
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            log(f"  {size}-dim store: {first + len(points)}/{len(corpus)} documents upserted")
    tick = time.perf_counter()
    store.optimize()
    seconds["optimize"] = time.perf_counter() - tick
    tick = time.perf_counter()
    store.close()
    seconds["close"] = time.perf_counter() - tick
    total = time.perf_counter() - started
    return {
        "seconds": seconds,
        "total_s": total,
        "docs_per_s": len(corpus) / total,
        "disk_gb": folder_gb(folder),
        "batch": batch,
    }


# --------------------------------------------------------------------------- 2. search


@dataclass
class PreparedQuery:
    text: str
    vectors48: np.ndarray
    vectors64: np.ndarray
    sparse: Any  # qdrant_edge.SparseVector


def prepare_queries(queries: list[str], store48: EdgeStore, store64: EdgeStore) -> list[PreparedQuery]:
    import qdrant_edge as edge

    prepared = []
    for text in queries:
        vectors = store48.model.encode_query(text)
        sparse = store48._bm25.embed_query(text)
        prepared.append(
            PreparedQuery(
                text=text,
                vectors48=store48._storage_vectors(vectors),
                vectors64=store64._storage_vectors(vectors),
                sparse=edge.SparseVector(list(sparse.indices), list(sparse.values)),
            )
        )
    return prepared


def engine_request(vectors: np.ndarray | None, sparse: Any, prefetch: int) -> Any:
    """What EdgeStore.search sends, minus payloads; with no vectors, the BM25 prefetch alone."""
    import qdrant_edge as edge

    bm25 = edge.Query.Nearest(sparse, using=BM25)
    if vectors is None:
        return edge.QueryRequest(limit=prefetch, query=bm25, with_payload=False, with_vector=False)
    return edge.QueryRequest(
        limit=TOP_K,
        query=edge.Query.Nearest(vectors, using=COLBERT),
        prefetches=[edge.Prefetch(limit=prefetch, query=bm25)],
        with_payload=False,
        with_vector=False,
    )


def numpy_top(query: np.ndarray, ids: np.ndarray, corpus: SyntheticCorpus) -> tuple[np.ndarray, np.ndarray]:
    scores = maxsim(query, corpus.gather(ids))
    top = np.argsort(-scores, kind="stable")[:TOP_K]
    return ids[top], scores[top]


def search_latency(
    queries: list[PreparedQuery],
    stores: dict[int, EdgeStore],
    corpus: SyntheticCorpus,
    prefetch: int,
    warmup: int,
    first_stages: Sequence[str] = (),
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per query per contender, interleaved per query with a rotating order."""
    shard48, shard64 = stores[48].engine.shard, stores[64].engine.shard
    store48 = stores[48]
    candidates: list[int] = []

    def bm25_ids(q: PreparedQuery) -> np.ndarray:
        return np.array([point.id for point in shard48.query(engine_request(None, q.sparse, prefetch))], np.int64)

    def contenders(q: PreparedQuery) -> dict[str, Callable[[], object]]:
        request48 = engine_request(q.vectors48, q.sparse, prefetch)
        request64 = engine_request(q.vectors64, q.sparse, prefetch)
        ids = bm25_ids(q)
        candidates.append(ids.size)
        gathered = corpus.gather(ids)  # outside the timing: numpy-maxsim times the kernel alone
        return {
            "bm25": lambda: shard48.query(engine_request(None, q.sparse, prefetch)),
            "engine-48": lambda: shard48.query(request48),
            "engine-64": lambda: shard64.query(request64),
            "search-48": lambda: store48.search(q.text, top_k=TOP_K, prefetch_k=prefetch),
            "search-64": lambda: stores[64].search(q.text, top_k=TOP_K, prefetch_k=prefetch),
            "numpy-maxsim": lambda: maxsim(q.vectors48, gathered),
            "numpy-total": lambda: numpy_top(q.vectors48, bm25_ids(q), corpus),
            **{
                f"first-stage-{stage}": partial(
                    stores[64].search, q.text, top_k=TOP_K, prefetch_k=prefetch, first_stage=stage
                )
                for stage in first_stages
            },
        }

    for q in queries[:warmup]:
        for run in contenders(q).values():
            run()
    candidates.clear()
    names = [*CONTENDERS, *(f"first-stage-{stage}" for stage in first_stages)]
    times: dict[str, list[float]] = {name: [] for name in names}
    for position, q in enumerate(queries):
        runs = list(contenders(q).items())
        shift = position % len(runs)
        for name, run in runs[shift:] + runs[:shift]:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    counts = np.array(candidates)
    return times, {
        "mean": float(counts.mean()),
        "min": int(counts.min()),
        "short_of_prefetch": int((counts < prefetch).sum()),
    }


def latency_row(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
    }


def consistency(
    queries: list[PreparedQuery], stores: dict[int, EdgeStore], corpus: SyntheticCorpus, prefetch: int
) -> dict[str, Any]:
    """Top 10 of the 48-dim store, the padded one, EdgeStore.search and numpy on the same candidates."""
    shard48, shard64 = stores[48].engine.shard, stores[64].engine.shard
    rows = []
    for q in queries:
        hits48 = shard48.query(engine_request(q.vectors48, q.sparse, prefetch))
        hits64 = shard64.query(engine_request(q.vectors64, q.sparse, prefetch))
        search = stores[48].search(q.text, top_k=TOP_K, prefetch_k=prefetch)
        ids = np.array([point.id for point in shard48.query(engine_request(None, q.sparse, prefetch))], np.int64)
        numpy_ids, numpy_scores = numpy_top(q.vectors48, ids, corpus)
        ids48 = [int(point.id) for point in hits48]
        scores48 = np.array([point.score for point in hits48])
        scores64 = np.array([point.score for point in hits64])
        numpy_by_id = dict(zip(numpy_ids.tolist(), numpy_scores.tolist()))
        diff64 = float(np.abs(scores48 - scores64).max()) if len(hits64) == len(hits48) and hits48 else None
        shared = [position for position, doc in enumerate(ids48) if doc in numpy_by_id]
        rows.append(
            {
                "same_ids_48_64": ids48 == [int(point.id) for point in hits64],
                "max_score_diff_48_64": diff64,
                "same_ids_search": ids48 == [int(hit.id) for hit in search],
                "same_ids_numpy": ids48 == numpy_ids.tolist(),
                "overlap_numpy": len(shared),
                "max_score_diff_numpy": max((abs(scores48[i] - numpy_by_id[ids48[i]]) for i in shared), default=None),
                "top_score": float(scores48[0]) if len(scores48) else None,
            }
        )
    top_scores = [row["top_score"] for row in rows if row["top_score"] is not None]
    return {
        "queries": len(rows),
        "same_ids_48_64": sum(row["same_ids_48_64"] for row in rows),
        "max_score_diff_48_64": max((row["max_score_diff_48_64"] or 0.0) for row in rows),
        "same_ids_search": sum(row["same_ids_search"] for row in rows),
        "same_ids_numpy": sum(row["same_ids_numpy"] for row in rows),
        "min_overlap_numpy": min(row["overlap_numpy"] for row in rows),
        "max_score_diff_numpy": max((row["max_score_diff_numpy"] or 0.0) for row in rows),
        "top_score_range": [min(top_scores, default=0.0), max(top_scores, default=0.0)],
        "per_query": rows,
    }


def ratios(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    p50 = {name: row["p50_ms"] for name, row in rows.items()}
    return {
        "engine64_over_engine48": p50["engine-64"] / p50["engine-48"],
        "engine48_over_numpy_total": p50["engine-48"] / p50["numpy-total"],
        "engine48_over_numpy_maxsim": p50["engine-48"] / p50["numpy-maxsim"],
        "engine48_minus_bm25_over_numpy_maxsim": (p50["engine-48"] - p50["bm25"]) / p50["numpy-maxsim"],
        "search48_over_engine48": p50["search-48"] / p50["engine-48"],
        "search64_over_search48": p50["search-64"] / p50["search-48"],
    }


# --------------------------------------------------------------------------- report


def print_report(report: dict[str, Any]) -> None:
    m, s = report["machine"], report["settings"]
    print(
        f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['memory_gb']:.0f} GB, torch {m['torch']} "
        f"with {m['torch_threads']} threads, qdrant-edge {m['qdrant_edge']}"
    )
    foreign = report["foreign_cpu_share"]
    if foreign["indexing"] is not None:
        print(
            f"other processes used {foreign['indexing']:.0%} (indexing) and {foreign['search']:.0%} (search) "
            "of all CPU time while timing"
        )
    print(f"checkpoint: {s['checkpoint']}; peak RSS {report['peak_rss_gb']:.1f} GB")
    if m["thread_pools"]:
        print("thread pools: " + "; ".join(m["thread_pools"]))

    ix = report["indexing"]
    print()
    print(
        f"1. indexing {ix['docs']} SciFact documents ({ix['mean_doc_tokens']:.0f} tokens on average, "
        f"{ix['truncated_docs']} truncated), {s['repeats']} interleaved repeats, encode batch 16"
    )
    print(f"{'contender':<12} {'median docs/s':>14} {'min-max':>15}")
    labels = {"bare": "bare", "bare-batched": "bare-batched", "store": "store"}
    for name, row in ix["docs_per_s"].items():
        spread = f"{min(row['runs']):.1f}-{max(row['runs']):.1f}"
        print(f"{labels[name]:<12} {row['median']:>14.1f} {spread:>15}")
    print(
        f"store/bare {ix['store_over_bare']:.3f} (goal >= 0.9); store/bare-batched "
        f"{ix['store_over_bare_batched']:.3f}; "
        f"bare-batched/bare {ix['bare_batched_over_bare']:.3f}"
    )

    syn = report["synthetic"]
    print()
    print(
        f"2. search over {syn['docs']} synthetic documents: {syn['total_vectors']:,} vectors "
        f"(per document min {syn['vectors_per_doc']['min']}, median {syn['vectors_per_doc']['median']:.0f}, "
        f"mean {syn['vectors_per_doc']['mean']:.0f}, max {syn['vectors_per_doc']['max']}), "
        f"{syn['words_per_doc_mean']:.0f} words each from a {syn['vocabulary']:,}-word vocabulary; "
        f"numpy side holds {syn['numpy_dtype']} ({syn['numpy_gb']:.1f} GB), generated in {syn['generate_s']:.1f} s"
    )
    for size, load in report["stores"].items():
        sec = load["seconds"]
        how = "reused" if load["reused"] else "built"
        print(
            f"   {size}-dim float16 store {how}: load {load['total_s']:.1f} s ({load['docs_per_s']:.0f} docs/s; "
            f"texts+bm25+payload {sec['texts_bm25_payload']:.1f}, vectors {sec['vectors']:.1f}, "
            f"muvera {sec.get('muvera', 0.0):.1f}, upsert {sec['upsert']:.1f}, "
            f"optimize {sec['optimize']:.1f}, close {sec['close']:.1f} s), "
            f"{load['disk_gb']:.2f} GB on disk, {load['segments']} segments, reopened in {load['open_s']:.1f} s"
        )
    print(f"   {s['queries']} SciFact queries, top {TOP_K}, after {s['warmup']} warm-up queries; latency in ms")
    width = max(len(name) for block in report["search"].values() for name in block["latency"])
    print(f"{'prefetch':>8} {'contender':<{width}} {'p50':>8} {'p99':>8} {'mean':>8} {'min':>8}")
    for prefetch, block in report["search"].items():
        for name, row in block["latency"].items():
            print(
                f"{prefetch:>8} {name:<{width}} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['mean_ms']:>8.2f} "
                f"{row['min_ms']:>8.2f}"
            )
        c, r = block["candidates"], block["ratios"]
        print(
            f"{'':>8} BM25 candidates per query: mean {c['mean']:.0f}, min {c['min']} "
            f"({c['short_of_prefetch']} queries short of {prefetch})"
        )
        print(
            f"{'':>8} p50 ratios: engine 64-dim/48-dim {r['engine64_over_engine48']:.2f}; "
            f"engine/numpy-total {r['engine48_over_numpy_total']:.2f}; "
            f"engine/numpy-maxsim {r['engine48_over_numpy_maxsim']:.2f} "
            f"((engine - bm25)/numpy-maxsim {r['engine48_minus_bm25_over_numpy_maxsim']:.2f}); "
            f"search/engine {r['search48_over_engine48']:.2f}; search 64-dim/48-dim {r['search64_over_search48']:.2f}"
        )
        k = block["consistency"]
        print(
            f"{'':>8} top-{TOP_K} check on {k['queries']} queries: 48 vs 64 same ids {k['same_ids_48_64']}/"
            f"{k['queries']} (max score diff {k['max_score_diff_48_64']:.2e}); search vs engine same ids "
            f"{k['same_ids_search']}/{k['queries']}; numpy ({syn['numpy_dtype']} held) same ids "
            f"{k['same_ids_numpy']}/{k['queries']}, "
            f"min overlap {k['min_overlap_numpy']}, max score diff {k['max_score_diff_numpy']:.2e} "
            f"(top scores {k['top_score_range'][0]:.2f}-{k['top_score_range'][1]:.2f})"
        )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="synthetic documents per store (default 100000)")
    parser.add_argument("--index-docs", type=int, default=600, help="SciFact documents to index (default 600)")
    parser.add_argument("--queries", type=int, default=200, help="SciFact queries to time (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved indexing repeats (default 3)")
    parser.add_argument("--prefetch", type=int, nargs="+", default=[100, 500], help="prefetch sizes (100 500)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up queries per prefetch (default 10)")
    parser.add_argument("--check-queries", type=int, default=5, help="queries for the top-10 check (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: a random-weight 17m-shaped one)")
    parser.add_argument("--keep", type=Path, help="keep the synthetic stores here and reuse them on later runs")
    parser.add_argument("--load-batch", type=int, default=512, help="points per upsert in the bulk load (512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--first-stages",
        nargs="+",
        default=[],
        choices=EVAL_FIRST_STAGES,
        help="also time EdgeStore.search on the 64-dim store with these first stages (MUVERA ones add its vector)",
    )
    parser.add_argument(
        "--numpy-dtype",
        choices=("auto", "float32", "float16"),
        default="auto",
        help="how the numpy side holds the synthetic vectors; auto: float32 unless it and the two stores would "
        "exceed 70%% of available memory (float16 candidates are cast to float32 when gathered)",
    )
    parser.add_argument(
        "--json", type=Path, default=BENCH_ROOT / "store_search_and_indexing.json", help="report file (%(default)s)"
    )
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    for name in ("docs", "index_docs", "queries", "repeats", "check_queries", "load_batch", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.prefetch) < TOP_K:
        parser.error(f"--prefetch sizes must be at least {TOP_K}")
    return args


def numpy_dtype(choice: str, total_vectors: int, dim: int) -> str:
    """float32 unless it and both open stores would take more than 70% of the available memory.

    An open store measured about 2.5 times its float16 vectors in resident memory.
    """
    if choice != "auto":
        return choice
    available = _meminfo_gb("MemAvailable")
    stores = total_vectors * (dim + 64) * 2 * 2.5 / 2**30
    needed = total_vectors * dim * 4 / 2**30 + stores
    return "float32" if available is None or needed < 0.7 * available else "float16"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_shared()
    prepare_run(args.threads)

    path = args.model if args.model is not None else cached_checkpoint("17m")
    model = ColBERT.from_pretrained(path, device="cpu")
    if model.dim > 64:
        sys.exit(f"error: the model has {model.dim} dimensions; this benchmark pads to 64")
    real_docs = list(iter_corpus(SCIFACT))
    queries = load_search_queries(args.queries)
    workdir = Path(tempfile.mkdtemp(prefix="edgecolbert-store-bench-"))
    store_root = args.keep if args.keep is not None else workdir
    store_root.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine_info(args.threads)}
    stores: dict[int, EdgeStore] = {}
    try:
        log(f"1. indexing {min(args.index_docs, len(real_docs))} SciFact documents, {args.repeats} repeats")
        with ForeignCpu() as foreign_indexing:
            report["indexing"] = indexing(model, real_docs[: args.index_docs], args.repeats, workdir)

        log(f"2. synthetic corpus of {args.docs} documents")
        stats = corpus_stats(model, real_docs)
        start = time.perf_counter()
        lengths_probe = stats.kept_vectors[
            np.random.default_rng([args.seed, 0]).integers(0, stats.kept_vectors.size, size=args.docs)
        ]
        dtype = numpy_dtype(args.numpy_dtype, int(lengths_probe.sum()), model.dim)
        corpus = SyntheticCorpus.generate(stats, args.docs, model.dim, args.seed, dtype)
        generate_s = time.perf_counter() - start
        lengths = np.diff(corpus.offsets)
        report["synthetic"] = {
            "docs": len(corpus),
            "total_vectors": int(corpus.offsets[-1]),
            "vectors_per_doc": {
                "min": int(lengths.min()),
                "median": float(np.median(lengths)),
                "mean": float(lengths.mean()),
                "max": int(lengths.max()),
            },
            "lengths_from": "vectors encode_documents keeps for a uniformly drawn real SciFact document "
            "(tokenizer count after truncation and skiplist)",
            "words_per_doc_mean": float(stats.word_counts[corpus.sources].mean()),
            "vocabulary": int(stats.vocabulary.size),
            "numpy_dtype": dtype,
            "numpy_gb": corpus.vectors.nbytes / 2**30,
            "generate_s": generate_s,
        }
        report["stores"] = {}
        for size in (48, 64):
            folder = store_folder(store_root, args.docs, size, args.seed)
            log(f"   {size}-dim store in {folder}")
            muvera = size == 64 and any(stage in MUVERA_STAGES for stage in args.first_stages)
            stores[size], report["stores"][size] = open_or_build(
                folder, model, corpus, size, args.load_batch, args.keep is not None, muvera
            )
            report["stores"][size]["segments"] = stores[size].engine.shard.info().segments_count
            log(f"   {size}-dim store ready")
            if stores[size].count() != args.docs:
                raise RuntimeError(f"{folder} holds {stores[size].count()} documents, expected {args.docs}")

        log(f"   timing {len(queries)} queries at prefetch {args.prefetch}")
        prepared = prepare_queries(queries, stores[48], stores[64])
        report["search"] = {}
        with ForeignCpu() as foreign_search:
            for prefetch in args.prefetch:
                times, candidates = search_latency(prepared, stores, corpus, prefetch, args.warmup, args.first_stages)
                latency = {name: latency_row(seconds) for name, seconds in times.items()}
                report["search"][prefetch] = {
                    "latency": latency,
                    "candidates": candidates,
                    "ratios": ratios(latency),
                    "consistency": consistency(prepared[: args.check_queries], stores, corpus, prefetch),
                }
                log(f"   prefetch {prefetch} done")
        report["foreign_cpu_share"] = {"indexing": foreign_indexing.share, "search": foreign_search.share}
        report["peak_rss_gb"] = peak_rss_gb()
        report["settings"] = {
            "checkpoint": str(path),
            "model_dim": model.dim,
            "document_length": model.document_length,
            "index_docs": report["indexing"]["docs"],
            "repeats": args.repeats,
            "docs": args.docs,
            "queries": len(queries),
            "mean_query_vectors": float(np.mean([q.vectors48.shape[0] for q in prepared])),
            "prefetch": args.prefetch,
            "warmup": min(args.warmup, len(queries)),
            "top_k": TOP_K,
            "load_batch": args.load_batch,
            "seed": args.seed,
            "first_stages": args.first_stages,
            "keep": None if args.keep is None else str(args.keep),
            "engine_timings": "EdgeShard.query with pre-encoded query vectors and BM25 query, ids and scores only",
        }
    finally:
        for store in stores.values():
            store.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
