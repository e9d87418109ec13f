"""Judge a reranker on a BEIR-layout collection: first stage vs. MaxSim rerank, scored with pytrec_eval."""

from edgecolbert.errors import MissingDependencyError
from edgecolbert.evaluation.cache import CACHE_ENV_VAR, default_cache_dir
from edgecolbert.evaluation.collection import JudgedCollection, load_collection
from edgecolbert.evaluation.harness import FIRST_STAGES, evaluate
from edgecolbert.evaluation.metrics import METRICS, per_query_metrics, ranked_run
from edgecolbert.evaluation.report import EvalReport, Metrics, QueryResult, per_query_path

__all__ = [
    "CACHE_ENV_VAR",
    "FIRST_STAGES",
    "METRICS",
    "EvalReport",
    "JudgedCollection",
    "Metrics",
    "MissingDependencyError",
    "QueryResult",
    "default_cache_dir",
    "evaluate",
    "load_collection",
    "per_query_metrics",
    "per_query_path",
    "ranked_run",
]
