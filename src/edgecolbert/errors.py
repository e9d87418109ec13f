"""The exceptions edgecolbert raises.

Every error derives from :class:`EdgeColbertError`, so callers can catch the library's
failures in one place. Errors about bad arguments also derive from the matching builtin
(``ValueError`` / ``TypeError``) so code written against plain Python conventions still works.
:func:`require` imports an optional package or raises :class:`MissingDependencyError` naming its extra;
:func:`renamed_keyword` keeps an old keyword name working for a release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

__all__ = [
    "MISSING",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "DatasetError",
    "DocumentNotFoundError",
    "EdgeColbertError",
    "EmptyQueryError",
    "InvalidDocumentError",
    "InvalidInputError",
    "InvalidTypeError",
    "MissingCheckpointFileError",
    "MissingDependencyError",
    "ModelMismatchError",
    "OnnxExportError",
    "QdrantRequestError",
    "QdrantUnavailableError",
    "ServiceError",
    "SourceError",
    "StoreDiskFullError",
    "StoreError",
    "StoreLockedError",
    "TrainingDataError",
    "TrainingError",
    "UnsupportedCheckpointError",
    "renamed_keyword",
    "require",
]


class EdgeColbertError(Exception):
    """Base class of every error raised by edgecolbert."""


class CheckpointError(EdgeColbertError):
    """A checkpoint could not be found, read or understood."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """Neither a local folder nor a reachable Hugging Face hub repository."""


class MissingCheckpointFileError(CheckpointError, FileNotFoundError):
    """A checkpoint folder lacks a file its layout needs."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file exists but cannot be parsed (bad JSON, truncated safetensors, wrong shapes)."""


class UnsupportedCheckpointError(CheckpointError):
    """The folder is a model, but not one edgecolbert knows how to use as a late-interaction encoder."""


class InvalidInputError(EdgeColbertError, ValueError):
    """An argument has an acceptable type but an unusable value."""


class EmptyQueryError(InvalidInputError):
    """The query is empty or only whitespace, so there is nothing to score against."""


class InvalidTypeError(EdgeColbertError, TypeError):
    """An argument has the wrong type."""


class InvalidDocumentError(InvalidTypeError):
    """A text to encode or a candidate document is not a string."""


class MissingDependencyError(EdgeColbertError, ImportError):
    """An optional package that the requested feature needs is not installed."""


def require(module: str, extra: str, feature: str, *, instead: str | None = None) -> ModuleType:
    """Import ``module``, an optional dependency of ``feature`` that ``pip install "edgecolbert[extra]"`` installs.

    ``instead`` names a way around it (another backend, an option that drops the feature) for the message.
    """
    try:
        # The top-level package first: it is what pip installs, and a loaded submodule must not hide its absence.
        importlib.import_module(module.partition(".")[0])
        return importlib.import_module(module)
    except ImportError as exc:
        # exc.name is the module actually absent: onnx, say, when onnxruntime.quantization cannot load it;
        # its top-level package is what pip installs.
        missing = (exc.name or module).split(".")[0]
        alternative = f", or {instead}" if instead else ""
        raise MissingDependencyError(
            f'{feature} needs {missing}, which is not installed: pip install "edgecolbert[{extra}]"{alternative}.'
        ) from exc


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Default of a deprecated keyword, so that passing it at all (even as None) can be told from leaving it out."""


def renamed_keyword(old: str, new: str, old_value: Any, new_value: Any, default: Any) -> Any:
    """The value of keyword ``new``, or of its former name ``old`` (with a ``DeprecationWarning``) when given.

    ``old_value`` is :data:`MISSING` when the caller left the old name out. Giving both names is refused.
    """
    if old_value is MISSING:
        return new_value
    if new_value is not default and new_value != default:
        raise InvalidInputError(f"{old}= is the former name of {new}=: give {new}= only.")
    warnings.warn(
        f"{old}= is deprecated and will be removed in the next release; use {new}= instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


class StoreError(EdgeColbertError):
    """A store could not be opened, created or used."""


class ModelMismatchError(StoreError):
    """The store holds vectors from another model than the one given to query it."""


class DocumentNotFoundError(StoreError, KeyError):
    """An id asked for is not in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreLockedError(StoreError):
    """Another process (or another open store in this one) holds the folder."""


class StoreDiskFullError(StoreError):
    """The disk under a store has too little free space for the engine to open it or write safely."""


class QdrantUnavailableError(StoreError):
    """The server could not be reached, or kept failing transiently, until the retry budget ran out."""


class QdrantRequestError(StoreError):
    """The server answered a request with an error that retrying cannot fix."""


class SourceError(InvalidInputError):
    """A path to index does not exist, has an unsupported kind, or holds a malformed record."""


class DatasetError(EdgeColbertError):
    """A BEIR-layout folder is missing a file or holds a malformed line."""


class TrainingDataError(DatasetError):
    """Training data is missing, malformed, or does not fit the training settings."""


class TrainingError(EdgeColbertError):
    """A fine-tuning run cannot start or continue as asked."""


class OnnxExportError(EdgeColbertError):
    """The model could not be exported to ONNX or quantized."""


class ServiceError(EdgeColbertError):
    """The service could not be configured or started."""
