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
    from edgecolbert.store.base import AddReport, BaseStore, DenseEmbedder, MultiVectorStore, check_first_stage
    from edgecolbert.store.documents import Hit, Result, StoreDocument
    from edgecolbert.store.edge import EdgeStore
    from edgecolbert.store.qdrant import QdrantStore
    from edgecolbert.store.schema import StoreSchema

from edgecolbert.store.defaults import DEFAULT_STORE_PATH, FIRST_STAGES, FirstStageName
from edgecolbert.store.filters import MetadataFilter, parse_filter

# The engines import the model code (torch) and qdrant-client is optional: both load on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check_first_stage": "edgecolbert.store.base",
        "AddReport": "edgecolbert.store.base",
        "BaseStore": "edgecolbert.store.base",
        "DenseEmbedder": "edgecolbert.store.base",
        "MultiVectorStore": "edgecolbert.store.base",
        "Hit": "edgecolbert.store.documents",
        "Result": "edgecolbert.store.documents",
        "StoreDocument": "edgecolbert.store.documents",
        "EdgeStore": "edgecolbert.store.edge",
        "QdrantStore": "edgecolbert.store.qdrant",
        "StoreSchema": "edgecolbert.store.schema",
    },
)

__all__ = [
    "DEFAULT_STORE_PATH",
    "FIRST_STAGES",
    "AddReport",
    "BaseStore",
    "DenseEmbedder",
    "DocumentNotFoundError",
    "EdgeStore",
    "FirstStageName",
    "Hit",
    "MetadataFilter",
    "ModelMismatchError",
    "MultiVectorStore",
    "QdrantRequestError",
    "QdrantStore",
    "QdrantUnavailableError",
    "Result",
    "StoreDiskFullError",
    "StoreDocument",
    "StoreError",
    "StoreLockedError",
    "StoreSchema",
    "check_first_stage",
    "parse_filter",
]
