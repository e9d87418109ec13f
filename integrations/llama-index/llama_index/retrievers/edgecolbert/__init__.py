"""LlamaIndex retriever over an edgecolbert store: a first stage (BM25, dense or both) reranked by MaxSim."""

from llama_index.retrievers.edgecolbert.base import EdgeColbertRetriever
from llama_index.retrievers.edgecolbert.dense import LlamaIndexDense
from llama_index.retrievers.edgecolbert.filters import to_store_filter

__all__ = ["EdgeColbertRetriever", "LlamaIndexDense", "to_store_filter"]
