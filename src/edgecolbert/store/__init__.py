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
from edgecolbert.store.base import (
    FIRST_STAGES,
    AddReport,
    BaseStore,
    DenseEmbedder,
    FirstStageName,
    MultiVectorStore,
    check_first_stage,
)
from edgecolbert.store.documents import Hit, Result, StoreDocument
from edgecolbert.store.edge import DEFAULT_STORE_PATH, EdgeStore
from edgecolbert.store.filters import MetadataFilter, parse_filter
from edgecolbert.store.schema import StoreSchema

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


def __getattr__(name: str) -> object:
    # qdrant-client is an optional dependency: import it only when QdrantStore is asked for.
    if name == "QdrantStore":
        from edgecolbert.store.qdrant import QdrantStore

        return QdrantStore
    raise AttributeError(name)
