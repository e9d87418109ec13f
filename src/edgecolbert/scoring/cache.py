"""A bounded, thread-safe LRU cache of document embeddings."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from edgecolbert.errors import InvalidInputError


def content_hash(text: str) -> str:
    """The key a document's content is known by (also stored as ``content_hash`` in stores)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Maps (model fingerprint, content hash) to a document's ``[n_tokens, dim]`` vectors.

    Holds at most ``max_documents`` entries and evicts the least recently used. ``0`` turns it off.
    Stored arrays are read-only so a caller cannot corrupt what later callers receive.
    """

    def __init__(self, max_documents: int = 4096) -> None:
        if not isinstance(max_documents, int) or isinstance(max_documents, bool) or max_documents < 0:
            raise InvalidInputError(f"cache size must be a non-negative integer, got {max_documents!r}.")
        self.max_documents = max_documents
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            vectors = self._entries.get(key)
            if vectors is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return vectors

    def put(self, key: tuple[str, str], vectors: np.ndarray) -> None:
        if self.max_documents == 0:
            return
        frozen = np.array(vectors, dtype=np.float32, copy=True)
        frozen.setflags(write=False)
        with self._lock:
            self._entries[key] = frozen
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_documents:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
