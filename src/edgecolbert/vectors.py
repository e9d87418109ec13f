"""MultiVectors: many texts' token vectors packed end to end in one array."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from edgecolbert.errors import InvalidInputError


class MultiVectors(Sequence[np.ndarray]):
    """Token vectors of several texts in one float32 ``[total_tokens, dim]`` array plus offsets.

    Text ``i`` owns rows ``offsets[i]:offsets[i + 1]``. Indexing and iteration give zero-copy
    ``[n_tokens, dim]`` views, so kernels and stores can take the packed array as it is while
    callers see one array per text.
    """

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        data = np.asarray(data)
        offsets = np.asarray(offsets, dtype=np.int64)
        if data.ndim != 2:
            raise InvalidInputError(f"MultiVectors data must be 2-D [total_tokens, dim], got shape {data.shape}.")
        if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 or offsets[-1] != data.shape[0]:
            raise InvalidInputError(
                f"MultiVectors offsets must start at 0 and end at {data.shape[0]} (the row count), got {offsets!r}."
            )
        if np.any(np.diff(offsets) < 0):
            raise InvalidInputError("MultiVectors offsets must be non-decreasing.")
        self.data = data
        self.offsets = offsets

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], dim: int | None = None) -> MultiVectors:
        """Pack per-text ``[n_tokens, dim]`` arrays (copies them once)."""
        mats = [_as_matrix(array, position) for position, array in enumerate(arrays)]
        for position, mat in enumerate(mats):
            if mat.ndim != 2:
                raise InvalidInputError(f"Array {position} must be 2-D [n_tokens, dim], got shape {mat.shape}.")
        dims = {mat.shape[1] for mat in mats}
        if dim is not None:
            dims.add(dim)
        if len(dims) > 1:
            raise InvalidInputError(f"All token vectors must share one dimension, got {sorted(dims)}.")
        width = dims.pop() if dims else 0
        lengths = np.array([mat.shape[0] for mat in mats], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = np.concatenate(mats, axis=0) if mats else np.zeros((0, width), dtype=np.float32)
        return cls(data, offsets)

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Number of vectors per text."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> MultiVectors: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | MultiVectors:
        if isinstance(index, slice):
            return self.select(range(len(self))[index])
        position = range(len(self))[index]
        return self.data[self.offsets[position] : self.offsets[position + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for start, end in zip(self.offsets[:-1], self.offsets[1:]):
            yield self.data[start:end]

    def select(self, indices: Sequence[int] | np.ndarray) -> MultiVectors:
        """A new MultiVectors holding the given texts, in the given order."""
        return MultiVectors.from_arrays([self[int(i)] for i in indices], dim=self.dim)

    def __repr__(self) -> str:
        return f"MultiVectors(texts={len(self)}, vectors={self.data.shape[0]}, dim={self.dim})"


def _as_matrix(array: object, position: int) -> np.ndarray:
    try:
        return np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"Array {position} is not numeric ({exc}); pass [n_tokens, dim] float arrays.") from exc
