"""Retrieval metrics through pytrec_eval (trec_eval's own code), per query and averaged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

from edgecolbert.errors import require

METRICS = ("ndcg@10", "recall@100", "mrr@10")
MRR_DEPTH = 10

Run = dict[str, dict[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

# Our metric name -> (pytrec_eval measure to ask for, key it reports under).
_TREC_MEASURES = {"ndcg@10": ("ndcg_cut.10", "ndcg_cut_10"), "recall@100": ("recall.100", "recall_100")}


def ranked_run(rankings: Mapping[str, Sequence[str]]) -> Run:
    """A trec_eval run that keeps each ranking's order exactly.

    trec_eval re-sorts by score and breaks ties by document id, so raw scores with ties (BM25 gives
    many) would be evaluated in an order the system never produced. Rank-derived scores avoid that.
    """
    return {
        query_id: {doc_id: float(len(doc_ids) - rank) for rank, doc_id in enumerate(dict.fromkeys(doc_ids))}
        for query_id, doc_ids in rankings.items()
    }


def truncate(run: Run, depth: int) -> Run:
    """Each query's ``depth`` best documents."""
    return {
        query_id: dict(sorted(scores.items(), key=lambda item: item[1], reverse=True)[:depth])
        for query_id, scores in run.items()
    }


def per_query_metrics(qrels: Qrels, run: Run) -> dict[str, dict[str, float]]:
    """NDCG@10, Recall@100 and MRR@10 of every judged query; a query the run left empty scores 0.

    pytrec_eval's ``recip_rank`` has no cutoff, so MRR@10 is computed on the run cut to its top 10:
    a first relevant document at rank 11 counts 0, not 1/11.
    """
    pytrec_eval = _pytrec_eval()
    judgments = {query_id: dict(grades) for query_id, grades in qrels.items()}
    run = {query_id: run.get(query_id, {}) for query_id in judgments}
    cut = pytrec_eval.RelevanceEvaluator(judgments, {measure for measure, _ in _TREC_MEASURES.values()})
    rr = pytrec_eval.RelevanceEvaluator(judgments, {"recip_rank"})
    cut_results = cut.evaluate(run)
    rr_results = rr.evaluate(truncate(run, MRR_DEPTH))
    results = {}
    for query_id in judgments:
        measured = cut_results.get(query_id, {})
        row = {name: float(measured.get(key, 0.0)) for name, (_, key) in _TREC_MEASURES.items()}
        row["mrr@10"] = float(rr_results.get(query_id, {}).get("recip_rank", 0.0))
        results[query_id] = {name: row[name] for name in METRICS}
    return results


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over the queries (0 for no queries)."""
    count = len(per_query)
    return {name: (sum(row[name] for row in per_query.values()) / count if count else 0.0) for name in METRICS}


def _pytrec_eval() -> ModuleType:
    return require("pytrec_eval", "eval", "Evaluation")
