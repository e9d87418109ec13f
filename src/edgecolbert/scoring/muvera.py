"""MUVERA fixed-dimensional encodings (FDE): one vector per text whose inner product tracks MaxSim.

Dhulipala et al., 2024, "MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings". Each of
``repetitions`` rounds splits the token space into ``2**simhash_bits`` partitions with random
hyperplanes (SimHash), projects every token to ``projection_dim`` coordinates with a random ±1
matrix, and writes one block per partition: the SUM of a query's tokens there, the AVERAGE of a
document's tokens there (an empty document partition takes the token whose SimHash code is nearest
in Hamming distance). ``<query_fde, document_fde>`` then approximates the MaxSim score, so a
single-vector index can fetch candidates for exact MaxSim reranking.

Written here in numpy rather than taken from fastembed's ``postprocess.muvera``, because that
package pulls in onnxruntime, tokenizers, huggingface-hub and pillow for a few matrix products and
encodes one text at a time in a Python loop.

Determinism contract: the random matrices depend only on (seed, token dimension and the settings),
come from numpy's PCG64 ``default_rng(seed)`` stream, and are therefore the same on every machine;
a store that records ``FdeParams.to_dict()`` can encode new queries against old documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from edgecolbert.errors import InvalidInputError
from edgecolbert.scoring.maxsim import VectorsLike, _chunks, as_multivectors
from edgecolbert.vectors import MultiVectors

# 2**10 partitions per repetition is already far beyond what a few hundred tokens can fill.
MAX_SIMHASH_BITS = 10
# Tokens per encoding step: bounds the [tokens, repetitions, projection_dim] working arrays (about
# 10 MB at 20 repetitions of 16 coordinates) whatever the batch size.
_CHUNK_TOKENS = 8192


@dataclass(frozen=True)
class FdeParams:
    """Settings of a fixed-dimensional encoding; equal settings and seed give identical encodings.

    ``projection_dim=None`` (or equal to the token dimension) keeps the token vectors as they are;
    ``final_dim`` (optional)
    compresses the whole encoding with a count sketch (each coordinate added, with a random sign,
    to one random output coordinate). The defaults give 16 x 2**3 x 16 = 2,048 dimensions: on
    48- and 64-dimensional synthetic tokens and on SciFact MiniLM tokens they rank like MaxSim as
    well as 2**4 partitions (4,096 dimensions) do, at half the size.
    """

    repetitions: int = 16
    simhash_bits: int = 3
    projection_dim: int | None = 16
    final_dim: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _require_int("repetitions", self.repetitions, low=1)
        _require_int("simhash_bits", self.simhash_bits, low=0, high=MAX_SIMHASH_BITS)
        if self.projection_dim is not None:
            _require_int("projection_dim", self.projection_dim, low=1)
        if self.final_dim is not None:
            _require_int("final_dim", self.final_dim, low=1)
        _require_int("seed", self.seed, low=0, high=2**63 - 1)
        # Plain ints, so that to_dict() is JSON-able and equal settings hash alike.
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                object.__setattr__(self, field.name, int(value))

    @property
    def partitions(self) -> int:
        return 1 << self.simhash_bits

    def block_dim(self, dim: int) -> int:
        """Coordinates per partition for ``dim``-dimensional tokens."""
        return dim if self.projection_dim is None else self.projection_dim

    def fde_dim(self, dim: int) -> int:
        """Length of an encoding of ``dim``-dimensional tokens."""
        if self.final_dim is not None:
            return self.final_dim
        return self.repetitions * self.partitions * self.block_dim(dim)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings, e.g. to record next to the encodings in a store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FdeParams:
        """The settings :meth:`to_dict` wrote; unknown keys are refused rather than ignored."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"FDE settings must be a mapping, got {type(data).__name__}.")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"Unknown FDE settings {unknown}; expected only {sorted(known)} "
                "(was the record written by a newer edgecolbert?)."
            )
        return cls(**dict(data))


def document_fde(vectors: VectorsLike, params: FdeParams | None = None) -> np.ndarray:
    """Encodings of documents' token vectors: ``[n_documents, fde_dim]`` float32.

    Each partition holds the average of the document's tokens that fall in it; an empty partition
    holds the token whose SimHash code is nearest to the partition's (earliest token on ties).
    A document without tokens encodes as zeros, so it scores 0 against every query.
    """
    return _encode(as_multivectors(vectors, "documents"), params or FdeParams(), document=True)


def query_fde(vectors: np.ndarray | VectorsLike, params: FdeParams | None = None) -> np.ndarray:
    """Encodings of queries' token vectors: ``[fde_dim]`` for one ``[q, dim]`` array, else ``[n, fde_dim]``.

    Each partition holds the sum of the query's tokens that fall in it (empty partitions stay zero),
    so every query token meets the document's tokens of its own partition. An empty query encodes
    as zeros.
    """
    params = params or FdeParams()
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
        single = MultiVectors(vectors, np.array([0, vectors.shape[0]]))
        return _encode(single, params, document=False)[0]
    return _encode(as_multivectors(vectors, "queries"), params, document=False)


def fde_matrices(
    params: FdeParams, dim: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """The random matrices of ``params`` for ``dim``-dimensional tokens (read-only, cached).

    Returns the SimHash hyperplanes ``[dim, repetitions * simhash_bits]``, the projection
    ``[dim, repetitions * projection_dim]`` (``None`` for identity, including ``projection_dim == dim``) scaled by
    ``1 / sqrt(projection_dim)``, and the count sketch (target coordinate, sign) per encoding
    coordinate (``None`` without ``final_dim``).
    """
    _require_int("dim", dim, low=1)
    return _matrices(params, int(dim))


@lru_cache(maxsize=16)
def _matrices(
    params: FdeParams, dim: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    # One stream, drawn in a fixed order: changing a later setting never changes an earlier matrix.
    rng = np.random.default_rng(params.seed)
    reps = params.repetitions
    hyperplanes = rng.standard_normal((dim, reps * params.simhash_bits)).astype(np.float32)
    projection = None
    # A projection to the tokens' own width would only add noise: that width means identity.
    if params.projection_dim not in (None, dim):
        signs = rng.integers(0, 2, size=(dim, reps * params.projection_dim), dtype=np.int8) * 2 - 1
        projection = (signs / np.sqrt(params.projection_dim)).astype(np.float32)
    sketch = None
    if params.final_dim is not None:
        width = reps * params.partitions * params.block_dim(dim)
        targets = rng.integers(0, params.final_dim, size=width, dtype=np.int64)
        sketch_signs = (rng.integers(0, 2, size=width, dtype=np.int8) * 2 - 1).astype(np.float32)
        sketch = (targets, sketch_signs)
    for array in (hyperplanes, projection, *(sketch or ())):
        if array is not None:
            array.flags.writeable = False
    return hyperplanes, projection, sketch


def _encode(texts: MultiVectors, params: FdeParams, *, document: bool) -> np.ndarray:
    if not isinstance(params, FdeParams):
        raise InvalidInputError(f"params must be an FdeParams, got {type(params).__name__}.")
    dim = texts.dim
    if len(texts) == 0:
        # An empty list carries no dimension; only an identity projection's width depends on it.
        return np.zeros((0, params.fde_dim(dim)), dtype=np.float32)
    if dim < 1:
        raise InvalidInputError("Token vectors have 0 dimensions; pass [n_tokens, dim] arrays with dim >= 1.")
    weights = _stacked_weights(params, dim)
    reps, parts, width = params.repetitions, params.partitions, params.block_dim(dim)
    blocks = np.zeros((len(texts), reps, parts, width), dtype=np.float32)
    for first, last in _chunks(texts.offsets, _CHUNK_TOKENS):
        start, end = texts.offsets[first], texts.offsets[last]
        tokens = np.asarray(texts.data[start:end], dtype=np.float32)
        if not np.isfinite(tokens).all():
            raise InvalidInputError(
                "Token vectors hold NaN or infinity; an encoding needs finite vectors (check how they were made)."
            )
        # One product gives every token's hyperplane sides and projected coordinates, laid out
        # [row, token] so that each row (one bit or coordinate of one repetition) is contiguous.
        rows = weights @ tokens.T
        n_bits = reps * params.simhash_bits
        codes = _simhash_codes(rows[:n_bits], reps, params.simhash_bits)
        projected = rows[n_bits:].reshape(width, reps, -1)
        local_offsets = texts.offsets[first : last + 1] - start
        _fill_blocks(blocks[first:last], codes, projected, local_offsets, document=document)
    flat = blocks.reshape(len(texts), -1)
    sketch = fde_matrices(params, dim)[2]
    # fde_matrices makes a sketch exactly when final_dim is set.
    if sketch is None or params.final_dim is None:
        return flat
    return _count_sketch(flat, sketch, params.final_dim)


@lru_cache(maxsize=16)
def _stacked_weights(params: FdeParams, dim: int) -> np.ndarray:
    """Hyperplanes then projection as rows ``[bit * reps + rep]`` and ``[coordinate * reps + rep]``."""
    hyperplanes, projection, _ = fde_matrices(params, dim)
    reps = params.repetitions
    if projection is None:
        # Identity: multiplying by 1 and adding zeros is exact, so tokens pass through unchanged.
        projection = np.tile(np.eye(dim, dtype=np.float32), reps)
    hyper_rows = hyperplanes.T.reshape(reps, params.simhash_bits, dim).transpose(1, 0, 2).reshape(-1, dim)
    width = projection.shape[1] // reps
    proj_rows = projection.T.reshape(reps, width, dim).transpose(1, 0, 2).reshape(-1, dim)
    stacked = np.ascontiguousarray(np.concatenate([hyper_rows, proj_rows]), dtype=np.float32)
    stacked.flags.writeable = False
    return stacked


def _simhash_codes(sides: np.ndarray, reps: int, bits: int) -> np.ndarray:
    """Partition of every token in every repetition, ``[reps, tokens]``: bit j is the side of hyperplane j."""
    codes = np.zeros((reps, sides.shape[1]), dtype=np.int64)
    for bit in range(bits):
        codes |= (sides[bit * reps : (bit + 1) * reps] > 0).astype(np.int64) << bit
    return codes


def _fill_blocks(
    blocks: np.ndarray, codes: np.ndarray, projected: np.ndarray, offsets: np.ndarray, *, document: bool
) -> None:
    """Write a run of texts' partition blocks (``[texts, reps, partitions, width]``) in place.

    ``codes`` is ``[reps, tokens]`` and ``projected`` ``[width, reps, tokens]``.
    """
    n_texts, reps, parts, width = blocks.shape
    text_of_token = np.repeat(np.arange(n_texts), np.diff(offsets))
    # One flat cell per (text, repetition, partition), summed with bincount one coordinate at a time
    # over contiguous weights: several times faster than np.add.at on rows.
    cells = ((text_of_token[None, :] * reps + np.arange(reps)[:, None]) * parts + codes).ravel()
    n_cells = n_texts * reps * parts
    flat = blocks.reshape(n_cells, width)
    for column in range(width):
        flat[:, column] = np.bincount(cells, weights=projected[column].ravel(), minlength=n_cells)
    if not document:
        return
    counts = np.bincount(cells, minlength=n_cells)
    occupied = counts > 0
    flat[occupied] /= counts[occupied, None]
    _fill_empty(flat, counts.reshape(n_texts, reps, parts), cells, projected, offsets)


def _fill_empty(
    flat: np.ndarray, counts: np.ndarray, cells: np.ndarray, projected: np.ndarray, offsets: np.ndarray
) -> None:
    """Give each empty partition of a non-empty document its nearest token (SimHash Hamming distance)."""
    n_texts, reps, parts = counts.shape
    has_tokens = np.diff(offsets) > 0
    empty = (counts == 0) & has_tokens[:, None, None]
    if not empty.any():
        return
    # The earliest token of each occupied cell stands for it: ties in distance go to the earliest token.
    n_tokens = projected.shape[2]
    first_token = np.full(n_texts * reps * parts, n_tokens, dtype=np.int64)
    np.minimum.at(first_token, cells, np.tile(np.arange(n_tokens), reps))
    first_token = first_token.reshape(n_texts, reps, parts)
    text, rep, part = np.nonzero(empty)
    # key = distance * (n_tokens + 1) + earliest token: one argmin picks the nearest, then the earliest.
    distance = _popcount_table(parts)[part]  # [empties, parts]
    candidates = first_token[text, rep]  # [empties, parts]
    key = np.where(candidates < n_tokens, distance * (n_tokens + 1) + candidates, np.iinfo(np.int64).max)
    best = candidates[np.arange(text.size), np.argmin(key, axis=1)]
    flat.reshape(n_texts, reps, parts, -1)[text, rep, part] = projected[:, rep, best].T


@lru_cache(maxsize=MAX_SIMHASH_BITS + 1)
def _popcount_table(parts: int) -> np.ndarray:
    """Hamming distance between every pair of partition codes, ``[parts, parts]``."""
    xor = np.arange(parts)[:, None] ^ np.arange(parts)[None, :]
    return np.array([value.bit_count() for value in range(parts)], dtype=np.int64)[xor]


def _count_sketch(flat: np.ndarray, sketch: tuple[np.ndarray, np.ndarray], final_dim: int) -> np.ndarray:
    targets, signs = sketch
    order = np.argsort(targets, kind="stable")
    hit, starts = np.unique(targets[order], return_index=True)
    out = np.zeros((flat.shape[0], final_dim), dtype=np.float32)
    if flat.shape[0]:
        out[:, hit] = np.add.reduceat((flat * signs)[:, order], starts, axis=1)
    return out


def _require_int(name: str, value: object, *, low: int, high: int | None = None) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise InvalidInputError(f"FDE setting {name} must be an integer, got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InvalidInputError(f"FDE setting {name} must be {bound}, got {value}.")
