"""What the encoder needs from a backend: a padded batch in, its kept token vectors out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from edgecolbert.encoding.tokenization import TokenizedBatch


@runtime_checkable
class Backend(Protocol):
    """Runs the backbone and projection head for :class:`~edgecolbert.encoding.encoder.ColBERT`.

    Tokenization, length-sorted batching and pooling stay in the encoder, shared by every backend.
    """

    @property
    def name(self) -> str:
        """The ``backend=`` value of ``from_pretrained`` that selects it: ``"torch"`` or ``"onnx"``."""
        ...

    @property
    def quantize(self) -> str | None:
        """The ``quantize=`` value it runs (``"int8"``), None for float weights."""
        ...

    @property
    def fingerprint_parts(self) -> tuple[str, ...]:
        """What it changes in the vectors beyond float rounding; encoders differing here differ in fingerprint."""
        ...

    def forward(self, batch: TokenizedBatch) -> np.ndarray:
        """The kept tokens' projected, L2-normalised float32 vectors, packed row by row: ``[kept, dim]``."""
        ...

    def describe(self) -> str:
        """The ``from_pretrained`` arguments that chose it, as the encoder's repr shows them ("" for the default)."""
        ...


@runtime_checkable
class ConcurrentBackend(Backend, Protocol):
    """A backend that runs several batches at once; the encoder gives it at least ``workers`` of them."""

    @property
    def workers(self) -> int:
        """How many batches it runs at once."""
        ...

    def forward_batches(self, batches: Iterable[TokenizedBatch]) -> Iterator[np.ndarray]:
        """:meth:`forward` of each batch, in the order given."""
        ...
