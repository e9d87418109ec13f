"""EdgeStore indexing throughput and search latency at scale, against bare encoding and numpy MaxSim.

One run on one machine, with a random-weight checkpoint of the exact mxbai-edge-colbert-v0 shape
(speed does not depend on weights):

1. Indexing: the first ``--index-docs`` SciFact documents, encoded bare
   (``encode_documents``, one call; and in the 256-document calls ``add_documents`` makes) and
   written into a fresh EdgeStore with the defaults (float32, BM25) by ``add_documents`` (encoding, BM25, upsert).
   Repeats are interleaved, each store write into a fresh folder.
2. Search at scale: ``--docs`` synthetic documents bulk-loaded through the engine into one store per
   ``--layouts`` entry (default float32-64, the former placement read into memory at open, and
   float32-64-disk, the current default, memory-mapped: how the token vectors are stored, zero-padded to
   that width; a ``-disk`` store's files are read once before timing, so they are in the page cache as
   in a store in use). Token counts per document are drawn from the exact
   number of vectors the model keeps for real SciFact documents (tokenizer only: truncation at the
   document length and the punctuation skiplist applied); vectors are random normal, rows
   L2-normalised; texts for BM25 sample SciFact's words by their corpus frequency (Zipf-like).
   The stores are searched with the ONNX query encoder (int8 unless ``--query-quantize fp32``). Real
   SciFact queries are timed, interleaved per query in a rotating order, as:
     encode        the query encoding alone
     bm25          the BM25 prefetch alone (engine query, ids only)
     engine-L      EdgeShard.query on layout L: BM25 prefetch + MaxSim in one engine query, pre-encoded query
     search-L      EdgeStore.search on layout L end to end (query encoding, BM25 stage, MaxSim, payloads)
     numpy-maxsim  edgecolbert.scoring.maxsim over the same candidates' float vectors held in RAM
     numpy-total   engine-L's work with numpy doing the MaxSim: the bm25 query + gathering the candidates'
                   vectors + maxsim + top 10
     floor         what search-L does with numpy in place of the engine's MaxSim: query encoding, the same
                   BM25 candidate ids, numpy MaxSim over their vectors held in RAM, top 10, their payloads
     first-stage-NAME  with ``--first-stages``: EdgeStore.search on the last layout's store with that first
                   stage (bm25, muvera, hybrid-muvera; the MUVERA stages build that store with the default
                   FdeParams vector, written with each point)
   Ratios per layout, p50 and p99: search-L / floor and engine-L / numpy-total; top-10 ids and scores
   of every layout are checked against the first layout and against numpy. The numpy side holds the
   vectors as float32 unless memory is short (``--numpy-dtype``; float16 is cast when gathered) and
   runs with one BLAS thread (``--numpy-threads``). At 100,000 documents the two default stores keep
   about 12 GB of disk and need about 18 GB free while they are built (a store's merge writes its
   segments beside the old ones); resident memory reaches 12-15 GB, 5 GB of it anonymous (the numpy
   copy), the rest the stores' mapped files.

    python benchmarks/store_search_and_indexing.py --docs 100000 --keep /tmp/edgecolbert-bench/stores
    python benchmarks/store_search_and_indexing.py --docs 3000 --index-docs 60 --queries 20  # quick look
    python benchmarks/store_search_and_indexing.py --first-stages bm25 muvera hybrid-muvera  # + first stages
    python benchmarks/store_search_and_indexing.py --index-docs 0 --layouts float16-64 float32-64 float32-48 \
        float32-64-int8 float32-64-disk  # search only, more layouts
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
from edgecolbert.store.ranking import first_stage_top
from edgecolbert.store.schema import BM25, COLBERT, model_identity
from edgecolbert.store.stages import EVAL_FIRST_STAGES, MUVERA_STAGES

TOP_K = 10
STORE_BATCH = 256  # add_documents' default batch size
WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

# --------------------------------------------------------------------------- inputs


def load_search_queries(n: int) -> list[str]:
    """SciFact test queries first, then the other queries, ``n`` in all (fewer if SciFact has fewer)."""
    queries = load_queries(SCIFACT)
    order = [qid for qid in load_qrels(SCIFACT, "test") if qid in queries]
    tested = set(order)
    order += [qid for qid in queries if qid not in tested]
    return [queries[qid] for qid in order[:n]]


def log(message: str) -> None:
    rss, anon = _status_gb("VmRSS"), _status_gb("RssAnon")
    memory = "" if rss is None else f" (RSS {rss:.1f} GB, {anon or 0.0:.1f} GB of it anonymous)"
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
        edge_store = EdgeStore(folder, model)  # the defaults: float32, BM25 on
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


@dataclass(frozen=True)
class Layout:
    """How a store keeps its token vectors: ``DATATYPE-SIZE[-int8][-disk]`` on the command line.

    ``-disk`` keeps them in memory-mapped files (``EdgeStore(on_disk=True)``), read through the page
    cache; without it the engine reads them into its own memory when the store opens.
    """

    datatype: str
    size: int
    quantization: str | None = None
    on_disk: bool = False

    @classmethod
    def parse(cls, text: str) -> Layout:
        parts = text.split("-")
        on_disk = parts[-1] == "disk"
        if on_disk:
            parts = parts[:-1]
        if len(parts) not in (2, 3) or parts[0] not in ("float32", "float16") or not parts[1].isdigit():
            raise argparse.ArgumentTypeError(
                f"a layout is DATATYPE-SIZE[-int8][-disk] (float16-64, float32-64-int8, float32-64-disk); got {text}"
            )
        if len(parts) == 3 and parts[2] != "int8":
            raise argparse.ArgumentTypeError(f"the only quantization is int8; got {text}")
        return cls(parts[0], int(parts[1]), parts[2] if len(parts) == 3 else None, on_disk)

    @property
    def name(self) -> str:
        return (
            f"{self.datatype}-{self.size}"
            + (f"-{self.quantization}" if self.quantization else "")
            + ("-disk" if self.on_disk else "")
        )

    @property
    def stored_bytes(self) -> int:
        """Bytes per stored token vector, the int8 copy included."""
        width = 4 if self.datatype == "float32" else 2
        return self.size * (width + (1 if self.quantization else 0))


def fill_page_cache(folder: Path) -> float:
    """Read a store's files once, so a memory-mapped store is timed with its files in the page cache.

    That is the state of a store in use; the first searches after a reboot read their candidates'
    rows from disk instead, which this benchmark does not time.
    """
    started = time.perf_counter()
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            with file.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
    return time.perf_counter() - started


def store_folder(root: Path, n_docs: int, layout: Layout, seed: int) -> Path:
    return root / f"synthetic-{n_docs}docs-{layout.name}-seed{seed}"


def open_or_build(
    folder: Path,
    model: ColBERT,
    corpus: SyntheticCorpus,
    layout: Layout,
    batch: int,
    keep: bool,
    muvera: bool = False,
) -> tuple[EdgeStore, dict[str, Any]]:
    """The store in ``folder``: reused when a finished build with the same inputs is there, else built."""
    marker = folder.with_name(folder.name + ".done.json")
    fingerprint = {
        "docs": len(corpus),
        "layout": layout.name,
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
    load = bulk_load(folder, model, corpus, layout, batch, muvera)
    if keep:
        marker.write_text(json.dumps({"fingerprint": fingerprint, "load": load}, indent=2) + "\n", encoding="utf-8")
    start = time.perf_counter()
    store = EdgeStore(folder, model)
    return store, dict(load, reused=False, open_s=time.perf_counter() - start)


def bulk_load(
    folder: Path, model: ColBERT, corpus: SyntheticCorpus, layout: Layout, batch: int, muvera: bool = False
) -> dict[str, Any]:
    """Upsert prepared points in batches, then merge segments; closed afterwards so the WAL is flushed."""
    store = EdgeStore(
        folder,
        model,
        datatype=layout.datatype,  # type: ignore[arg-type]  # checked by Layout.parse
        quantization=layout.quantization,  # type: ignore[arg-type]
        vector_size=layout.size,
        muvera=muvera,
        on_disk=layout.on_disk,
    )
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
            log(f"  {layout.name} store: {first + len(points)}/{len(corpus)} documents upserted")
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
    vectors: np.ndarray  # the query model's output: what numpy scores with
    stored: dict[str, np.ndarray]  # per layout: padded as that store sends them to the engine
    sparse: Any  # qdrant_edge.SparseVector


def prepare_queries(queries: list[str], stores: dict[str, EdgeStore]) -> list[PreparedQuery]:
    import qdrant_edge as edge

    any_store = next(iter(stores.values()))
    prepared = []
    for text in queries:
        vectors = any_store.model.encode_query(text)
        sparse = any_store._bm25.embed_query(text)
        prepared.append(
            PreparedQuery(
                text=text,
                vectors=vectors,
                stored={name: store._storage_vectors(vectors) for name, store in stores.items()},
                sparse=edge.SparseVector(list(sparse.indices), list(sparse.values)),
            )
        )
    return prepared


def engine_request(vectors: np.ndarray | None, sparse: Any, prefetch: int) -> Any:
    """One engine query: the BM25 prefetch and MaxSim over its candidates; with no vectors, the prefetch alone."""
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


def first_stage_ids(store: EdgeStore, text: str, vectors: np.ndarray, prefetch: int) -> np.ndarray:
    """The candidates ``EdgeStore.search`` reranks: its BM25 stage with its tie-breaking cut."""
    stages = store._first_stages(text, "bm25", None, vectors)
    points = first_stage_top(store.engine, stages, prefetch, (), store.schema.metadata_key, with_payload=False)
    return np.array([point.point_id for point in points], dtype=np.int64)


def floor_search(store: EdgeStore, text: str, corpus: SyntheticCorpus, prefetch: int) -> list[dict[str, Any]]:
    """EdgeStore.search's work with numpy doing the MaxSim: encode, BM25 candidates, numpy MaxSim, payloads."""
    vectors = store.model.encode_query(text)
    top, _ = numpy_top(vectors, first_stage_ids(store, text, vectors, prefetch), corpus)
    found = store.engine.payloads([int(doc) for doc in top], None)
    return [found[int(doc)] for doc in top]


def search_latency(
    queries: list[PreparedQuery],
    stores: dict[str, EdgeStore],
    corpus: SyntheticCorpus,
    prefetch: int,
    warmup: int,
    first_stages: Sequence[str] = (),
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per query per contender, interleaved per query with a rotating order."""
    reference = next(iter(stores.values()))
    shard = reference.engine.shard
    last = list(stores.values())[-1]
    candidates: list[int] = []

    def bm25_ids(q: PreparedQuery) -> np.ndarray:
        return np.array([point.id for point in shard.query(engine_request(None, q.sparse, prefetch))], np.int64)

    def contenders(q: PreparedQuery) -> dict[str, Callable[[], object]]:
        ids = first_stage_ids(reference, q.text, q.vectors, prefetch)
        candidates.append(ids.size)
        gathered = corpus.gather(ids)  # outside the timing: numpy-maxsim times the kernel alone
        runs: dict[str, Callable[[], object]] = {
            "encode": partial(reference.model.encode_query, q.text),
            "bm25": partial(shard.query, engine_request(None, q.sparse, prefetch)),
            "numpy-maxsim": partial(maxsim, q.vectors, gathered),
            "numpy-total": lambda: numpy_top(q.vectors, bm25_ids(q), corpus),
            "floor": partial(floor_search, reference, q.text, corpus, prefetch),
        }
        for name, store in stores.items():
            runs[f"engine-{name}"] = partial(
                store.engine.shard.query, engine_request(q.stored[name], q.sparse, prefetch)
            )
            runs[f"search-{name}"] = partial(store.search, q.text, top_k=TOP_K, prefetch_k=prefetch)
        for stage in first_stages:
            runs[f"first-stage-{stage}"] = partial(
                last.search, q.text, top_k=TOP_K, prefetch_k=prefetch, first_stage=stage
            )
        return runs

    for q in queries[:warmup]:
        for run in contenders(q).values():
            run()
    candidates.clear()
    times: dict[str, list[float]] = {}
    for position, q in enumerate(queries):
        runs = list(contenders(q).items())
        shift = position % len(runs)
        for name, run in runs[shift:] + runs[:shift]:
            start = time.perf_counter()
            run()
            times.setdefault(name, []).append(time.perf_counter() - start)
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


# float16 keeps 11 significant bits: a stored unit vector moves by at most 2**-11 in norm, so a MaxSim score
# by at most the sum of the query vectors' norms times that, and two scores' order can flip within twice it.
FLOAT16_STEP = 2.0**-11


def consistency(
    queries: list[PreparedQuery], stores: dict[str, EdgeStore], corpus: SyntheticCorpus, prefetch: int
) -> dict[str, Any]:
    """Each layout's EdgeStore.search top 10 against the first layout's and against numpy on the same candidates.

    Score differences between layouts are rounding of the stored vectors; against numpy, the numpy side's
    float32 (or float16) copy of the same values. Where a top 10 differs from the first layout's, the order
    gap says by how much: the largest difference of the first layout's scores between two documents it
    orders the other way round (or one it keeps and one it does not); a query whose gap exceeds twice its
    float16 rounding bound changed beyond rounding.
    """
    reference_name, reference = next(iter(stores.items()))
    per_layout: dict[str, dict[str, Any]] = {}
    for name, store in stores.items():
        same_reference = same_numpy = beyond_rounding = 0
        diff_reference = diff_numpy = order_gap_max = 0.0
        min_overlap = TOP_K
        for q in queries:
            ids = [int(hit.id) for hit in store.search(q.text, top_k=TOP_K, prefetch_k=prefetch)]
            base_ids = [int(hit.id) for hit in reference.search(q.text, top_k=TOP_K, prefetch_k=prefetch)]
            union = [str(doc) for doc in dict.fromkeys(ids + base_ids)]
            scores = {int(hit.id): hit.score for hit in store.rerank(q.text, union, query_vectors=q.vectors)}
            base = {int(hit.id): hit.score for hit in reference.rerank(q.text, union, query_vectors=q.vectors)}
            numpy_ids, numpy_scores = numpy_top(
                q.vectors, first_stage_ids(reference, q.text, q.vectors, prefetch), corpus
            )
            same_reference += ids == base_ids
            same_numpy += ids == numpy_ids.tolist()
            min_overlap = min(min_overlap, len(set(ids) & set(numpy_ids.tolist())))
            diff_reference = max([diff_reference, *(abs(scores[doc] - base[doc]) for doc in scores)])
            by_numpy = dict(zip(numpy_ids.tolist(), numpy_scores.tolist()))
            diff_numpy = max([diff_numpy, *(abs(scores[doc] - by_numpy[doc]) for doc in ids if doc in by_numpy)])
            gap = order_gap(ids, base_ids, base)
            order_gap_max = max(order_gap_max, gap)
            bound = float(np.linalg.norm(q.vectors, axis=1).sum()) * FLOAT16_STEP
            beyond_rounding += gap > 2 * bound
        per_layout[name] = {
            f"same_ids_{reference_name}": same_reference,
            f"max_score_diff_{reference_name}": diff_reference,
            f"max_order_gap_{reference_name}": order_gap_max,
            f"beyond_rounding_{reference_name}": beyond_rounding,
            "same_ids_numpy": same_numpy,
            "min_overlap_numpy": min_overlap,
            "max_score_diff_numpy": diff_numpy,
        }
    bounds = [float(np.linalg.norm(q.vectors, axis=1).sum()) * FLOAT16_STEP for q in queries]
    return {
        "queries": len(queries),
        "reference": reference_name,
        "float16_score_bound": [min(bounds), max(bounds)],
        "layouts": per_layout,
    }


def order_gap(ranking: list[int], reference_ranking: list[int], reference_scores: dict[int, float]) -> float:
    """The largest reference-score difference ``ranking`` contradicts (0: the reference's own ranking)."""
    gap = 0.0
    for position, earlier in enumerate(ranking):
        for later in ranking[position + 1 :]:
            gap = max(gap, reference_scores[later] - reference_scores[earlier])
    kept, added = set(reference_ranking) - set(ranking), set(ranking) - set(reference_ranking)
    for dropped in kept:
        for extra in added:
            gap = max(gap, reference_scores[dropped] - reference_scores[extra])
    return gap


def ratios(rows: dict[str, dict[str, float]], layouts: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per layout and percentile: search over the floor (like for like), engine over numpy, and the MaxSim alone."""
    out: dict[str, dict[str, float]] = {}
    for name in layouts:
        for pct in ("p50", "p99"):
            value = {contender: row[f"{pct}_ms"] for contender, row in rows.items()}
            out.setdefault(name, {}).update(
                {
                    f"search_over_floor_{pct}": value[f"search-{name}"] / value["floor"],
                    f"engine_over_numpy_total_{pct}": value[f"engine-{name}"] / value["numpy-total"],
                }
            )
        p50 = {contender: row["p50_ms"] for contender, row in rows.items()}
        out[name]["engine_minus_bm25_over_numpy_maxsim_p50"] = (p50[f"engine-{name}"] - p50["bm25"]) / p50[
            "numpy-maxsim"
        ]
        out[name]["search_over_first_layout_p50"] = p50[f"search-{name}"] / p50[f"search-{layouts[0]}"]
    return out


# --------------------------------------------------------------------------- report


def print_report(report: dict[str, Any]) -> None:
    m, s = report["machine"], report["settings"]
    print(
        f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['memory_gb']:.0f} GB, torch {m['torch']} "
        f"with {m['torch_threads']} threads, qdrant-edge {m['qdrant_edge']}; load average at the start "
        f"{report['load_average']['start']}, at the end {report['load_average']['end']}"
    )
    foreign = report["foreign_cpu_share"]
    shares = ", ".join(f"{share:.0%} ({what})" for what, share in foreign.items() if share is not None)
    if shares:
        print(f"other processes used {shares} of all CPU time while timing")
    print(f"checkpoint: {s['checkpoint']}; peak RSS {report['peak_rss_gb']:.1f} GB; took {report['total_s']:.0f} s")
    if m["thread_pools"]:
        print("thread pools: " + "; ".join(m["thread_pools"]))

    ix = report.get("indexing")
    if ix is not None:
        print()
        print(
            f"1. indexing {ix['docs']} SciFact documents ({ix['mean_doc_tokens']:.0f} tokens on average, "
            f"{ix['truncated_docs']} truncated), {s['repeats']} interleaved repeats, encode batch 16, torch"
        )
        print(f"{'contender':<12} {'median docs/s':>14} {'min-max':>15}")
        for name, row in ix["docs_per_s"].items():
            spread = f"{min(row['runs']):.1f}-{max(row['runs']):.1f}"
            print(f"{name:<12} {row['median']:>14.1f} {spread:>15}")
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
    for name, load in report["stores"].items():
        sec = load["seconds"]
        how = "reused" if load["reused"] else "built"
        filled = load.get("page_cache_fill_s")
        print(
            f"   {name} store {how}: load {load['total_s']:.1f} s ({load['docs_per_s']:.0f} docs/s; "
            f"texts+bm25+payload {sec['texts_bm25_payload']:.1f}, vectors {sec['vectors']:.1f}, "
            f"muvera {sec.get('muvera', 0.0):.1f}, upsert {sec['upsert']:.1f}, "
            f"optimize {sec['optimize']:.1f}, close {sec['close']:.1f} s), "
            f"{load['disk_gb']:.2f} GB on disk, {load['segments']} segments, reopened in {load['open_s']:.1f} s"
            + (f", its files read into the page cache in {filled:.1f} s" if filled is not None else "")
        )
    print(
        f"   {s['queries']} SciFact queries encoded by {s['query_encoder']}, top {TOP_K}, after {s['warmup']} warm-up "
        f"queries; numpy BLAS threads {s['numpy_blas_threads']}; latency in ms"
    )
    width = max(len(name) for block in report["search"].values() for name in block["latency"])
    print(f"{'prefetch':>8} {'contender':<{width}} {'p50':>8} {'p99':>8} {'mean':>8} {'min':>8}")
    for prefetch, block in report["search"].items():
        for name, row in block["latency"].items():
            print(
                f"{prefetch:>8} {name:<{width}} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['mean_ms']:>8.2f} "
                f"{row['min_ms']:>8.2f}"
            )
        c = block["candidates"]
        print(
            f"{'':>8} BM25 candidates per query: mean {c['mean']:.0f}, min {c['min']} "
            f"({c['short_of_prefetch']} queries short of {prefetch})"
        )
        for name, r in block["ratios"].items():
            print(
                f"{'':>8} {name}: search/floor p50 {r['search_over_floor_p50']:.2f}, "
                f"p99 {r['search_over_floor_p99']:.2f}; "
                f"engine/numpy-total p50 {r['engine_over_numpy_total_p50']:.2f}, "
                f"p99 {r['engine_over_numpy_total_p99']:.2f}; "
                f"(engine - bm25)/numpy-maxsim p50 {r['engine_minus_bm25_over_numpy_maxsim_p50']:.2f}; "
                f"search p50 over {s['layouts'][0]}'s {r['search_over_first_layout_p50']:.2f}"
            )
        k = block["consistency"]
        ref = k["reference"]
        low, high = k["float16_score_bound"]
        print(f"{'':>8} float16 rounding bound per score on these queries: {low:.2e}-{high:.2e}")
        for name, row in k["layouts"].items():
            print(
                f"{'':>8} top-{TOP_K} of {name} on {k['queries']} queries: same ids as {ref} "
                f"{row[f'same_ids_{ref}']}/{k['queries']} (max score diff {row[f'max_score_diff_{ref}']:.2e}, "
                f"max order gap {row[f'max_order_gap_{ref}']:.2e}, {row[f'beyond_rounding_{ref}']} beyond "
                "rounding); "
                f"as numpy ({syn['numpy_dtype']} held) {row['same_ids_numpy']}/{k['queries']}, min overlap "
                f"{row['min_overlap_numpy']}, max score diff {row['max_score_diff_numpy']:.2e}"
            )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="synthetic documents per store (default 100000)")
    parser.add_argument(
        "--index-docs", type=int, default=600, help="SciFact documents to index (default 600; 0 skips section 1)"
    )
    parser.add_argument("--queries", type=int, default=200, help="SciFact queries to time (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved indexing repeats (default 3)")
    parser.add_argument("--prefetch", type=int, nargs="+", default=[100, 500], help="prefetch sizes (100 500)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up queries per prefetch (default 10)")
    parser.add_argument("--check-queries", type=int, default=20, help="queries for the top-10 check (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: a random-weight 17m-shaped one)")
    parser.add_argument(
        "--layouts",
        type=Layout.parse,
        nargs="+",
        default=[Layout("float32", 64), Layout("float32", 64, on_disk=True)],
        help="one store per layout, DATATYPE-SIZE[-int8][-disk]; the first is the reference of the top-10 check "
        "(default: float32-64 float32-64-disk, the former and the current default)",
    )
    parser.add_argument(
        "--query-backend", choices=("onnx", "torch"), default="onnx", help="query encoder of section 2 (onnx)"
    )
    parser.add_argument(
        "--query-quantize",
        choices=("int8", "fp32"),
        default="int8",
        help="ONNX query encoder weights (int8: the fastest single query on CPU; the stored vectors are synthetic, "
        "so it changes no comparison)",
    )
    parser.add_argument(
        "--numpy-threads",
        type=int,
        default=1,
        help="BLAS threads for the numpy side while searching (default 1: with two, interleaved with the engine's "
        "search threads on two cores, numpy MaxSim ran up to 30x slower in a probe)",
    )
    parser.add_argument("--keep", type=Path, help="keep the synthetic stores here and reuse them on later runs")
    parser.add_argument("--load-batch", type=int, default=512, help="points per upsert in the bulk load (512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--first-stages",
        nargs="+",
        default=[],
        choices=EVAL_FIRST_STAGES,
        help="also time EdgeStore.search on the last layout's store with these first stages (MUVERA ones add its "
        "vector to that store)",
    )
    parser.add_argument(
        "--numpy-dtype",
        choices=("auto", "float32", "float16"),
        default="auto",
        help="how the numpy side holds the synthetic vectors; auto: float32 unless it and the open stores would "
        "exceed 70%% of available memory (float16 candidates are cast to float32 when gathered)",
    )
    parser.add_argument(
        "--json", type=Path, default=BENCH_ROOT / "store_search_and_indexing.json", help="report file (%(default)s)"
    )
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.index_docs < 0:
        parser.error("--warmup and --index-docs must not be negative")
    for name in ("docs", "queries", "repeats", "check_queries", "load_batch", "threads", "numpy_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.prefetch) < TOP_K:
        parser.error(f"--prefetch sizes must be at least {TOP_K}")
    if len({layout.name for layout in args.layouts}) != len(args.layouts):
        parser.error("--layouts must not repeat a layout")
    return args


# Resident memory of an open store per byte of its stored vectors: 1.05 measured at 30,000 documents with
# two stores open, nearly all of it the engine's mapped segment files (file-backed, but evicting them would
# turn searches into disk reads).
STORE_RSS_PER_BYTE = 1.1


def numpy_dtype(choice: str, total_vectors: int, dim: int, layouts: Sequence[Layout]) -> str:
    """float32 unless it and the open stores would take more than 70% of the available memory."""
    if choice != "auto":
        return choice
    available = _meminfo_gb("MemAvailable")
    stores = total_vectors * sum(layout.stored_bytes for layout in layouts) * STORE_RSS_PER_BYTE / 2**30
    needed = total_vectors * dim * 4 / 2**30 + stores
    return "float32" if available is None or needed < 0.7 * available else "float16"


def load_query_model(args: argparse.Namespace, path: Path, torch_model: ColBERT) -> ColBERT:
    if args.query_backend == "torch":
        return torch_model
    quantize = None if args.query_quantize == "fp32" else args.query_quantize
    return ColBERT.from_pretrained(path, backend="onnx", quantize=quantize)


def blas_limit(threads: int) -> Any:
    """Limit numpy's BLAS pool for the search section (a no-op without threadpoolctl, reported as such)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_shared()
    prepare_run(args.threads)
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine_info(args.threads), "load_average": {"start": load_average()}}

    path = args.model if args.model is not None else cached_checkpoint("17m")
    model = ColBERT.from_pretrained(path, device="cpu")
    if model.dim > min(layout.size for layout in args.layouts):
        sys.exit(f"error: the model has {model.dim} dimensions; every layout's size must be at least that")
    real_docs = list(iter_corpus(SCIFACT))
    queries = load_search_queries(args.queries)
    workdir = Path(tempfile.mkdtemp(prefix="edgecolbert-store-bench-"))
    store_root = args.keep if args.keep is not None else workdir
    store_root.mkdir(parents=True, exist_ok=True)
    stores: dict[str, EdgeStore] = {}
    foreign: dict[str, float | None] = {}
    try:
        if args.index_docs:
            log(f"1. indexing {min(args.index_docs, len(real_docs))} SciFact documents, {args.repeats} repeats")
            with ForeignCpu() as foreign_indexing:
                report["indexing"] = indexing(model, real_docs[: args.index_docs], args.repeats, workdir)
            foreign["indexing"] = foreign_indexing.share

        log(f"2. synthetic corpus of {args.docs} documents")
        query_model = load_query_model(args, path, model)
        stats = corpus_stats(model, real_docs)
        start = time.perf_counter()
        lengths_probe = stats.kept_vectors[
            np.random.default_rng([args.seed, 0]).integers(0, stats.kept_vectors.size, size=args.docs)
        ]
        dtype = numpy_dtype(args.numpy_dtype, int(lengths_probe.sum()), model.dim, args.layouts)
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
        for position, layout in enumerate(args.layouts):
            folder = store_folder(store_root, args.docs, layout, args.seed)
            log(f"   {layout.name} store in {folder}")
            muvera = position == len(args.layouts) - 1 and any(stage in MUVERA_STAGES for stage in args.first_stages)
            store, load = open_or_build(folder, model, corpus, layout, args.load_batch, args.keep is not None, muvera)
            store.close()  # built with the torch model; searched with the query model
            start = time.perf_counter()
            stores[layout.name] = EdgeStore(folder, query_model)
            load["open_s"] = time.perf_counter() - start
            load["segments"] = stores[layout.name].engine.shard.info().segments_count
            if layout.on_disk:
                load["page_cache_fill_s"] = fill_page_cache(folder)
            report["stores"][layout.name] = load
            log(f"   {layout.name} store ready")
            if stores[layout.name].count() != args.docs:
                raise RuntimeError(f"{folder} holds {stores[layout.name].count()} documents, expected {args.docs}")

        log(f"   timing {len(queries)} queries at prefetch {args.prefetch}")
        names = [layout.name for layout in args.layouts]
        report["search"] = {}
        limit = blas_limit(args.numpy_threads)
        try:
            prepared = prepare_queries(queries, stores)
            with ForeignCpu() as foreign_search:
                for prefetch in args.prefetch:
                    times, candidates = search_latency(
                        prepared, stores, corpus, prefetch, args.warmup, args.first_stages
                    )
                    latency = {name: latency_row(seconds) for name, seconds in times.items()}
                    report["search"][prefetch] = {
                        "latency": latency,
                        "candidates": candidates,
                        "ratios": ratios(latency, names),
                        "consistency": consistency(prepared[: args.check_queries], stores, corpus, prefetch),
                    }
                    log(f"   prefetch {prefetch} done")
        finally:
            if limit is not None:
                limit.unregister()
        foreign["search"] = foreign_search.share
        report["foreign_cpu_share"] = foreign
        report["peak_rss_gb"] = peak_rss_gb()
        report["settings"] = {
            "checkpoint": str(path),
            "model_dim": model.dim,
            "document_length": model.document_length,
            "index_docs": report["indexing"]["docs"] if "indexing" in report else 0,
            "repeats": args.repeats,
            "docs": args.docs,
            "layouts": names,
            "query_encoder": args.query_backend + (f" {args.query_quantize}" if args.query_backend == "onnx" else ""),
            "numpy_blas_threads": args.numpy_threads if limit is not None else "not limited (no threadpoolctl)",
            "queries": len(queries),
            "mean_query_vectors": float(np.mean([q.vectors.shape[0] for q in prepared])),
            "prefetch": args.prefetch,
            "warmup": min(args.warmup, len(queries)),
            "top_k": TOP_K,
            "load_batch": args.load_batch,
            "seed": args.seed,
            "first_stages": args.first_stages,
            "keep": None if args.keep is None else str(args.keep),
            "engine_timings": "EdgeShard.query: BM25 prefetch + MaxSim in one engine query, pre-encoded query, "
            "ids and scores only",
            "floor": "query encoding + EdgeStore's BM25 first stage (same candidate ids as search) + numpy MaxSim "
            "over the candidates' vectors held in memory + top 10 + their payloads",
        }
    finally:
        for store in stores.values():
            store.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report["load_average"]["end"] = load_average()
    report["total_s"] = time.perf_counter() - started
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
