"""Document multivectors in Qdrant: one protocol, an embedded engine and a client-server one."""

from edgecolbert.errors import (
    DocumentNotFoundError,
    ModelMismatchError,
    QdrantRequestError,
    QdrantUnavailableError,
    StoreDiskFullError,
    StoreError,
    StoreLockedError,
)
from edgecolbert.store.base import AddReport, BaseStore, DenseEmbedder, MultiVectorStore
from edgecolbert.store.documents import Hit, StoreDocument
from edgecolbert.store.edge import DEFAULT_STORE_PATH, EdgeStore
from edgecolbert.store.schema import StoreSchema

__all__ = [
    "DEFAULT_STORE_PATH",
    "AddReport",
    "BaseStore",
    "DenseEmbedder",
    "DocumentNotFoundError",
    "EdgeStore",
    "Hit",
    "ModelMismatchError",
    "MultiVectorStore",
    "QdrantRequestError",
    "QdrantStore",
    "QdrantUnavailableError",
    "StoreDiskFullError",
    "StoreDocument",
    "StoreError",
    "StoreLockedError",
    "StoreSchema",
]


def __getattr__(name: str) -> object:
    # qdrant-client is an optional dependency: import it only when QdrantStore is asked for.
    if name == "QdrantStore":
        from edgecolbert.store.qdrant import QdrantStore

        return QdrantStore
    raise AttributeError(name)
