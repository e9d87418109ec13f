"""Text to token vectors: checkpoint formats, tokenization, the backbone and its backends, projection, pooling."""

from edgecolbert.encoding.encoder import DEFAULT_MODEL, ColBERT

__all__ = ["DEFAULT_MODEL", "ColBERT"]
