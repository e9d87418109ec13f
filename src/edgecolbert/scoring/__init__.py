"""Token vectors to rankings: MaxSim kernels, top-k, MUVERA encodings, the embedding cache and the reranker."""

from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.scoring.muvera import FdeParams, document_fde, query_fde
from edgecolbert.scoring.reranker import Reranker, RerankResult, RerankResults

__all__ = [
    "EmbeddingCache",
    "FdeParams",
    "RerankResult",
    "RerankResults",
    "Reranker",
    "content_hash",
    "document_fde",
    "maxsim",
    "query_fde",
    "topk",
]
