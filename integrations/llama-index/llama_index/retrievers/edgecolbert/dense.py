"""A LlamaIndex embedding model in the shape edgecolbert's stores take as their dense first stage."""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.embeddings.base import BaseEmbedding


class LlamaIndexDense:
    """Wraps a LlamaIndex ``BaseEmbedding`` with ``embed_documents`` / ``embed_query``.

    Pass it as ``dense=`` to ``EdgeStore`` / ``QdrantStore`` (or ``QdrantStore.attach``) so the store's
    dense first stage embeds queries with the same model that embedded the LlamaIndex nodes.
    """

    def __init__(self, embed_model: BaseEmbedding) -> None:
        self.embed_model = embed_model

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [list(vector) for vector in self.embed_model.get_text_embedding_batch(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return list(self.embed_model.get_query_embedding(text))

    def __repr__(self) -> str:
        return f"LlamaIndexDense({self.embed_model.model_name!r})"
