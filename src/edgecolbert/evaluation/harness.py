"""The evaluation run: index the corpus once, rank every judged query twice, score both rankings."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, SupportsInt, cast

from tqdm.auto import tqdm

from edgecolbert.documents import present
from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import InvalidInputError
from edgecolbert.evaluation.cache import default_cache_dir, store_folder
from edgecolbert.evaluation.collection import JudgedCollection, load_collection
from edgecolbert.evaluation.metrics import mean_metrics, per_query_metrics, ranked_run
from edgecolbert.evaluation.report import EvalReport, Metrics, QueryResult
from edgecolbert.scoring.muvera import FdeParams
from edgecolbert.sources.beir import iter_corpus
from edgecolbert.store.base import check_positive
from edgecolbert.store.documents import StoreDocument
from edgecolbert.store.edge import EdgeStore
from edgecolbert.store.stages import EVAL_FIRST_STAGES, MUVERA_STAGES

logger = logging.getLogger(__name__)

FirstStageMethod = Literal["bm25", "muvera", "hybrid-muvera"]
# The store's own BM25 (Qdrant Edge's, stemmed, IDF from the stored corpus) rather than a separate BM25 library:
# the candidates are then exactly what store.search() reranks. On SciFact's 300 test queries it scored NDCG@10
# 0.683 against 0.662 for bm25s with English stopwords, so nothing is lost by it. The MUVERA stages use the
# store's MUVERA vector, computed from the cached corpus vectors on first use (nothing is encoded again).
FIRST_STAGES = EVAL_FIRST_STAGES
ENCODER_LOGGER = "edgecolbert.encoding.encoder"


def evaluate(
    dataset: str | os.PathLike[str],
    model: ColBERT | str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    first_stage: FirstStageMethod = "bm25",
    top_k: int = 100,
    cache_dir: str | os.PathLike[str] | None = None,
    max_queries: int | None = None,
    progress: bool = False,
    device: str | None = None,
    encode_batch_size: int = 16,
    write_batch_size: int = 256,
    backend: str | None = None,
    quantize: str | None = None,
    pool_factor: int | None = None,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
    compile: bool | None = None,
    document_length: int | None = None,
    muvera: FdeParams | None = None,
) -> EvalReport:
    """Judge MaxSim reranking on a BEIR-layout collection.

    The corpus goes into an embedded store cached under ``cache_dir`` (default
    :func:`~edgecolbert.evaluation.cache.default_cache_dir`) keyed by the model and the bytes of
    corpus.jsonl, so a second run encodes nothing and an interrupted one resumes where it stopped.
    For each judged query the store's first stage (its BM25) ranks the corpus; the top ``top_k`` of
    that ranking are then ordered by MaxSim over their stored vectors. Both rankings are scored
    with pytrec_eval. ``write_batch_size`` documents are encoded and written at a time; each written
    batch survives an interruption.

    ``backend``, ``quantize``, ``pool_factor``, ``onnx_cache_dir``, ``compile`` and ``document_length`` load
    the model as
    :meth:`ColBERT.from_pretrained` does (a given :class:`ColBERT` carries its own). Each combination
    keeps its own cached corpus vectors, and the report records which one was judged; ``compile``
    changes only the speed, so it shares the uncompiled model's cache.

    ``first_stage="muvera"`` or ``"hybrid-muvera"`` first gives the cached store its MUVERA vector from
    the stored corpus vectors (with ``muvera``, default :class:`FdeParams`; a store that has the vector
    keeps its settings and refuses others).
    """
    started = time.perf_counter()
    check_positive("top_k", top_k)
    check_positive("write_batch_size", write_batch_size)
    if first_stage not in FIRST_STAGES:
        raise InvalidInputError(f"first_stage is one of {', '.join(FIRST_STAGES)}; got {first_stage!r}.")
    collection = load_collection(dataset, split, max_queries)
    encoder = _load_encoder(
        model,
        device=device,
        backend=backend,
        quantize=quantize,
        pool_factor=pool_factor,
        onnx_cache_dir=onnx_cache_dir,
        compile=compile,
        document_length=document_length,
    )
    folder = store_folder(
        cache_dir if cache_dir is not None else default_cache_dir(), dataset, collection.corpus_hash, encoder
    )
    logger.info("Corpus vectors of %s are cached in %s", dataset, folder)
    with EdgeStore(folder, encoder, encode_batch_size=encode_batch_size) as store:
        index_started = time.perf_counter()
        encoded = _index_corpus(store, collection, write_batch_size, progress)
        if first_stage in MUVERA_STAGES:
            store.add_muvera(muvera, batch_size=write_batch_size, progress=progress)
        index_seconds = time.perf_counter() - index_started
        query_started = time.perf_counter()
        first, reranked = _rank(store, collection.queries, first_stage, top_k, progress)
        query_seconds = time.perf_counter() - query_started
        model_name = store.schema.model
        pooled_by = store.model.pool_factor
    rows = _query_results(collection.qrels, first, reranked)
    before = Metrics.from_mapping(mean_metrics({row.query_id: _plain(row.first_stage) for row in rows}))
    after = Metrics.from_mapping(mean_metrics({row.query_id: _plain(row.reranked) for row in rows}))
    return EvalReport(
        dataset=str(dataset),
        model=model_name,
        split=split,
        n_queries=len(rows),
        top_k=top_k,
        first_stage=before,
        reranked=after,
        difference=after.minus(before),
        seconds=time.perf_counter() - started,
        first_stage_method=first_stage,
        corpus_size=collection.corpus_size,
        corpus_hash=collection.corpus_hash,
        encoded_documents=encoded,
        index_seconds=index_seconds,
        query_seconds=query_seconds,
        store=str(folder),
        backend=encoder.backend,
        quantize=encoder.quantize,
        pool_factor=pooled_by,
        per_query=rows,
    )


def _load_encoder(model: ColBERT | str | os.PathLike[str] | None, **options: Any) -> ColBERT:
    device = options.pop("device")
    given = {name: value for name, value in options.items() if value is not None}
    if not isinstance(model, ColBERT):
        return ColBERT.from_pretrained(model, device=device, **given)
    if given:
        raise InvalidInputError(
            f"{', '.join(sorted(given))} apply when the model is loaded by name; the ColBERT given carries its own. "
            "Pass them to ColBERT.from_pretrained instead."
        )
    return model


def _index_corpus(store: EdgeStore, collection: JudgedCollection, batch_size: int, progress: bool) -> int:
    """Add the corpus; documents already stored are skipped, so this resumes an interrupted run."""
    report = store.add_documents(
        _documents(collection.folder), batch_size=batch_size, progress=progress, total=collection.corpus_size
    )
    encoded = report.added + report.reencoded
    if encoded:
        store.optimize()
    return encoded


def _documents(folder: Path) -> Iterator[StoreDocument]:
    for document in iter_corpus(folder):
        yield StoreDocument(text=document.full_text, id=document.id)


def _rank(
    store: EdgeStore, queries: Mapping[str, str], first_stage: FirstStageMethod, top_k: int, progress: bool
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each query's first-stage top k, and exactly those documents reordered by MaxSim."""
    first: dict[str, list[str]] = {}
    reranked: dict[str, list[str]] = {}
    bar = tqdm(queries.items(), desc="ranking", unit="query", disable=not progress, dynamic_ncols=True)
    with _one_query_truncation_warning(len(queries), store.model.query_length):
        for query_id, text in bar:
            # The MUVERA stages and the MaxSim rerank score with one encoding of the query; BM25 needs none.
            vectors = store.model.encode_query(text) if first_stage in MUVERA_STAGES else None
            hits = store.search_first_stage(text, top_k=top_k, first_stage=first_stage, query_vectors=vectors)
            candidates = [present(hit.id, "id") for hit in hits]
            first[query_id] = candidates
            ranked = store.rerank(text, candidates, query_vectors=vectors) if candidates else []
            reranked[query_id] = [present(hit.id, "id") for hit in ranked]
    return first, reranked


class _QueryTruncationCounter(logging.Filter):
    """Swallows the encoder's per-query truncation warning and counts it instead."""

    def __init__(self) -> None:
        super().__init__()
        self.truncated = 0

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno == logging.WARNING and args and args[-1] == "query":
            # The encoder's own warning, whose first argument is the count.
            self.truncated += int(cast(SupportsInt, args[0]))
            return False
        return True


@contextmanager
def _one_query_truncation_warning(n_queries: int, query_length: int) -> Iterator[None]:
    """Each query is encoded on its own; hundreds of identical warnings would bury the results."""
    counter = _QueryTruncationCounter()
    encoder_logger = logging.getLogger(ENCODER_LOGGER)
    encoder_logger.addFilter(counter)
    try:
        yield
    finally:
        encoder_logger.removeFilter(counter)
    if counter.truncated:
        logger.warning(
            "%d of %d queries exceed %d tokens and were truncated; load the model with a larger query_length to "
            "keep them whole.",
            counter.truncated,
            n_queries,
            query_length,
        )


def _query_results(
    qrels: Mapping[str, Mapping[str, int]], first: dict[str, list[str]], reranked: dict[str, list[str]]
) -> list[QueryResult]:
    before = per_query_metrics(qrels, ranked_run(first))
    after = per_query_metrics(qrels, ranked_run(reranked))
    rows = []
    for query_id, grades in qrels.items():
        first_metrics, reranked_metrics = Metrics.from_mapping(before[query_id]), Metrics.from_mapping(after[query_id])
        relevant = {doc_id for doc_id, grade in grades.items() if grade > 0}
        rows.append(
            QueryResult(
                query_id=query_id,
                relevant=len(relevant),
                first_stage=first_metrics,
                reranked=reranked_metrics,
                difference=reranked_metrics.minus(first_metrics),
                first_relevant_rank_first_stage=_first_relevant(first[query_id], relevant),
                first_relevant_rank_reranked=_first_relevant(reranked[query_id], relevant),
            )
        )
    return rows


def _first_relevant(ranking: Sequence[str], relevant: set[str]) -> int | None:
    return next((rank for rank, doc_id in enumerate(ranking, start=1) if doc_id in relevant), None)


def _plain(metrics: Metrics) -> dict[str, float]:
    return metrics.model_dump(by_alias=True)
