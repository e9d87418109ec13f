"""Shared pieces for store tests: a small model, both engines, a deterministic dense embedder, and the
check of the highlights the framework packages put in metadata."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgecolbert import ColBERT, Reranker
from edgecolbert.scoring import highlight_texts

TOPICS = ["cats", "dogs", "rivers", "mountains", "violins", "comets"]


def corpus(n: int = 60) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Texts with a topic word each, ids and metadata with a keyword, a year and a tag list."""
    texts, ids, metadatas = [], [], []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        texts.append(f"note {i}: a short text about {topic} and the {TOPICS[(i * 7) % len(TOPICS)]} seen in year {i}")
        ids.append(f"doc-{i}")
        metadatas.append({"topic": topic, "year": 1990 + i, "tags": [topic, "even" if i % 2 == 0 else "odd"]})
    return texts, ids, metadatas


class HashEmbedder:
    """A deterministic dense model: bag of hashed words, so shared words mean similar vectors."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        vector = np.zeros(self.size, dtype=np.float64)
        for word in text.lower().split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.size] += 1.0
        norm = np.linalg.norm(vector)
        return (vector / norm if norm else vector + 1.0 / np.sqrt(self.size)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class CountingModel:
    """Wraps a model to record which documents reach the encoder."""

    def __init__(self, model: ColBERT, fail_after: int | None = None) -> None:
        self._model = model
        self.encoded: list[str] = []
        self.fail_after = fail_after
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode_documents(self, texts: list[str], **kwargs: Any) -> Any:
        with self._lock:
            if self.fail_after is not None and len(self.encoded) >= self.fail_after:
                raise RuntimeError("encoder failure injected by the test")
            self.encoded.extend(texts)
        return self._model.encode_documents(texts, **kwargs)


def count_query_encodings(model: ColBERT, monkeypatch: Any) -> list[str]:
    """Record each query ``model`` encodes, by any of its query-encoding methods, for as long as the test runs."""
    encoded: list[str] = []
    encode_query, encode_queries, encode_aligned = model.encode_query, model.encode_queries, model.encode_aligned

    def one(text: str) -> Any:
        encoded.append(text)
        return encode_query(text)

    def many(texts: list[str], **kwargs: Any) -> Any:
        encoded.extend(texts)
        return encode_queries(texts, **kwargs)

    def aligned(text: str, kind: str) -> Any:
        if kind == "query":
            encoded.append(text)
        return encode_aligned(text, kind)

    monkeypatch.setattr(model, "encode_query", one)
    monkeypatch.setattr(model, "encode_queries", many)
    monkeypatch.setattr(model, "encode_aligned", aligned)
    return encoded


def copy_store(source: Path, target: Path) -> Path:
    """Copy a store folder keeping its files sparse.

    The engine preallocates 32 MB files that are almost all holes (a two-document store uses 184 KB of
    disk); a plain copy writes the zeros out, about 200 MB per copy.
    """
    return Path(shutil.copytree(source, target, copy_function=_copy_sparse))


def _copy_sparse(source: str, target: str) -> None:
    block = 1 << 20
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(block):
            if chunk.count(0) == len(chunk):
                writer.seek(len(chunk), 1)
            else:
                writer.write(chunk)
        writer.truncate()
    shutil.copystat(source, target)


def open_store(engine: str, tmp_path: Path, model: ColBERT, **options: Any) -> Any:
    if engine == "edge":
        from edgecolbert.store import EdgeStore

        return EdgeStore(tmp_path / "store", model, **options)
    from qdrant_client import QdrantClient

    from edgecolbert.store import QdrantStore

    return QdrantStore("docs", model, client=QdrantClient(":memory:"), **options)


@contextmanager
def served(
    model: ColBERT,
    limits: Any,
    *,
    store_folder: Path | None = None,
    documents: Sequence[str] = (),
    ids: Sequence[str] | None = None,
    api_key: str | None = None,
) -> Iterator[str]:
    """The URL of a live service around ``Reranker(model)``: with an embedded store in ``store_folder``
    (holding ``documents`` under ``ids``) or without a store, and with ``api_key`` when given."""
    from edgecolbert.serving.app import create_app, serve_in_background
    from edgecolbert.store import EdgeStore

    with ExitStack() as stack:
        store = None if store_folder is None else stack.enter_context(EdgeStore(store_folder, model))
        if store is not None and documents:
            store.add(list(documents), ids=ids)
        app = create_app(reranker=Reranker(model), store=store, api_key=api_key, limits=limits)
        yield stack.enter_context(serve_in_background(app))


def assert_metadata_highlights(model: ColBERT, query: str, texts: list[str], shown: list[Any]) -> None:
    """``shown[i]`` (a document's metadata highlights) is highlight_texts' passages of ``texts[i]``, and each
    passage's range cuts its text out of the document's text."""
    expected = highlight_texts(model, query, texts)
    assert shown == [[passage.to_dict() for passage in item.passages] for item in expected]
    for text, passages in zip(texts, shown):
        assert all(text[passage["start"] : passage["end"]] == passage["text"] for passage in passages)
    assert any(shown), "no document had a passage to show"
