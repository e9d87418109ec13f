"""Token vectors to rankings: MaxSim kernels, top-k, MUVERA encodings, the embedding cache and the reranker."""

from edgecolbert.documents import Result
from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.scoring.muvera import FdeParams, document_fde, query_fde
from edgecolbert.scoring.reranker import Reranker, RerankResult, RerankResults, check_query

__all__ = [
    "EmbeddingCache",
    "FdeParams",
    "RerankResult",
    "RerankResults",
    "Reranker",
    "Result",
    "check_query",
    "content_hash",
    "document_fde",
    "maxsim",
    "query_fde",
    "topk",
]
