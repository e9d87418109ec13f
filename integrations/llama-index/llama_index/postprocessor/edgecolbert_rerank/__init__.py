"""LlamaIndex node postprocessor that reorders nodes by late-interaction (ColBERT) MaxSim with edgecolbert."""

from llama_index.postprocessor.edgecolbert_rerank.base import FIRST_STAGE_SCORE_KEY, HIGHLIGHTS_KEY, EdgeColbertRerank

__all__ = ["FIRST_STAGE_SCORE_KEY", "HIGHLIGHTS_KEY", "EdgeColbertRerank"]
