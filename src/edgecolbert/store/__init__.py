"""Document multivectors in Qdrant: one protocol, an embedded engine and a client-server one."""

from typing import TYPE_CHECKING

from edgecolbert._lazy import lazy_exports
from edgecolbert.errors import (
    DocumentNotFoundError,
    ModelMismatchError,
    QdrantRequestError,
    QdrantUnavailableError,
    StoreDiskFullError,
    StoreError,
    StoreLockedError,
)

if TYPE_CHECKING:
    from edgecolbert.store.base import AddReport, BaseStore, DenseEmbedder, MultiVectorStore
    from edgecolbert.store.documents import Hit, StoreDocument
    from edgecolbert.store.edge import EdgeStore
    from edgecolbert.store.qdrant import QdrantStore
    from edgecolbert.store.schema import StoreSchema

from edgecolbert.store.defaults import DEFAULT_STORE_PATH

# The engines import the model code (torch) and qdrant-client is optional: both load on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AddReport": "edgecolbert.store.base",
        "BaseStore": "edgecolbert.store.base",
        "DenseEmbedder": "edgecolbert.store.base",
        "MultiVectorStore": "edgecolbert.store.base",
        "Hit": "edgecolbert.store.documents",
        "StoreDocument": "edgecolbert.store.documents",
        "EdgeStore": "edgecolbert.store.edge",
        "QdrantStore": "edgecolbert.store.qdrant",
        "StoreSchema": "edgecolbert.store.schema",
    },
)

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
