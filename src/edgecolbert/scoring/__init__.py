"""Token vectors to rankings: MaxSim kernels, top-k, MUVERA encodings, the embedding cache, the reranker and
score explanations."""

from edgecolbert.documents import Result, present
from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.explain import (
    Explanation,
    Highlight,
    MatchedSpan,
    TextHighlights,
    TokenMatch,
    explain,
    highlight_texts,
    highlights,
    matched_spans,
)
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.scoring.muvera import FdeParams, document_fde, query_fde
from edgecolbert.scoring.reranker import Reranker, RerankResult, RerankResults, check_query

__all__ = [
    "EmbeddingCache",
    "Explanation",
    "FdeParams",
    "Highlight",
    "MatchedSpan",
    "RerankResult",
    "RerankResults",
    "Reranker",
    "Result",
    "TextHighlights",
    "TokenMatch",
    "check_query",
    "content_hash",
    "document_fde",
    "explain",
    "highlight_texts",
    "highlights",
    "matched_spans",
    "maxsim",
    "present",
    "query_fde",
    "topk",
]
