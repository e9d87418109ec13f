"""LangChain 1.x integration of edgecolbert: a late-interaction (ColBERT) reranker and retrievers.

- :class:`EdgeColbertRerank`: a document compressor that reorders documents by MaxSim.
- :class:`EdgeColbertRetriever`: search an edgecolbert store (first stage + MaxSim in one query).
- :class:`RerankRetriever`: any retriever as the first stage, reordered by an ``EdgeColbertRerank``.
"""

from importlib.metadata import PackageNotFoundError, version

from langchain_edgecolbert.documents import FIRST_STAGE_SCORE_KEY, HIGHLIGHTS_KEY, SCORE_KEY
from langchain_edgecolbert.rerank import EdgeColbertRerank
from langchain_edgecolbert.retrievers import EdgeColbertRetriever, RerankRetriever, SearchOptions

try:
    __version__ = version("langchain-edgecolbert")
except PackageNotFoundError:  # a source tree on sys.path that pip never installed: pyproject.toml holds the number
    __version__ = "0+unknown"

__all__ = [
    "FIRST_STAGE_SCORE_KEY",
    "HIGHLIGHTS_KEY",
    "SCORE_KEY",
    "EdgeColbertRerank",
    "EdgeColbertRetriever",
    "RerankRetriever",
    "SearchOptions",
]
