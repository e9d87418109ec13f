"""Token vectors to rankings: MaxSim kernels, top-k, the embedding cache and the reranker."""

from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.scoring.reranker import Reranker, RerankResult, RerankResults

__all__ = ["EmbeddingCache", "RerankResult", "RerankResults", "Reranker", "content_hash", "maxsim", "topk"]
