"""edgecolbert: late-interaction (ColBERT) encoding and MaxSim reranking for retrieval pipelines."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from edgecolbert.documents import DEFAULT_TOP_K, RerankResult, RerankResults, Result, StoreDocument
from edgecolbert.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    DatasetError,
    DocumentNotFoundError,
    EdgeColbertError,
    EmptyQueryError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidTypeError,
    MissingCheckpointFileError,
    MissingDependencyError,
    ModelMismatchError,
    OnnxExportError,
    QdrantRequestError,
    QdrantUnavailableError,
    ServiceError,
    SourceError,
    StoreDiskFullError,
    StoreError,
    StoreLockedError,
    TrainingDataError,
    TrainingError,
    UnsupportedCheckpointError,
)

try:
    __version__ = version("edgecolbert")
except PackageNotFoundError:  # a source tree on sys.path that pip never installed: pyproject.toml holds the number
    __version__ = "0+unknown"

from edgecolbert._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_MODEL": "edgecolbert.encoding.defaults",
        "ColBERT": "edgecolbert.encoding.encoder",
        "EmbeddingCache": "edgecolbert.scoring.cache",
        "content_hash": "edgecolbert.scoring.cache",
        "maxsim": "edgecolbert.scoring.maxsim",
        "topk": "edgecolbert.scoring.maxsim",
        "Reranker": "edgecolbert.scoring.reranker",
        "MultiVectors": "edgecolbert.vectors",
    },
)

if TYPE_CHECKING:
    from edgecolbert.encoding.defaults import DEFAULT_MODEL
    from edgecolbert.encoding.encoder import ColBERT
    from edgecolbert.scoring.cache import EmbeddingCache, content_hash
    from edgecolbert.scoring.maxsim import maxsim, topk
    from edgecolbert.scoring.reranker import Reranker
    from edgecolbert.vectors import MultiVectors

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TOP_K",
    "CheckpointError",
    "CheckpointNotFoundError",
    "ColBERT",
    "CorruptCheckpointError",
    "DatasetError",
    "DocumentNotFoundError",
    "EdgeColbertError",
    "EmbeddingCache",
    "EmptyQueryError",
    "InvalidDocumentError",
    "InvalidInputError",
    "InvalidTypeError",
    "MissingCheckpointFileError",
    "MissingDependencyError",
    "ModelMismatchError",
    "MultiVectors",
    "OnnxExportError",
    "QdrantRequestError",
    "QdrantUnavailableError",
    "RerankResult",
    "RerankResults",
    "Reranker",
    "Result",
    "ServiceError",
    "SourceError",
    "StoreDiskFullError",
    "StoreDocument",
    "StoreError",
    "StoreLockedError",
    "TrainingDataError",
    "TrainingError",
    "UnsupportedCheckpointError",
    "content_hash",
    "maxsim",
    "topk",
]
