"""The exceptions edgecolbert raises.

Every error derives from :class:`EdgeColbertError`, so callers can catch the library's
failures in one place. Errors about bad arguments also derive from the matching builtin
(``ValueError`` / ``TypeError``) so code written against plain Python conventions still works.
"""

from __future__ import annotations


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
