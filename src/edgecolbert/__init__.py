"""edgecolbert: late-interaction (ColBERT) encoding and MaxSim reranking for retrieval pipelines."""

from edgecolbert.encoding.encoder import DEFAULT_MODEL, ColBERT
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
    StoreError,
    StoreLockedError,
    TrainingDataError,
    TrainingError,
    UnsupportedCheckpointError,
)
from edgecolbert.scoring.cache import EmbeddingCache, content_hash
from edgecolbert.scoring.maxsim import maxsim, topk
from edgecolbert.scoring.reranker import Reranker, RerankResult, RerankResults
from edgecolbert.vectors import MultiVectors

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
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
    "ServiceError",
    "SourceError",
    "StoreError",
    "StoreLockedError",
    "TrainingDataError",
    "TrainingError",
    "UnsupportedCheckpointError",
    "content_hash",
    "maxsim",
    "topk",
]
