"""Token pooling: merge a document's similar token vectors to store fewer of them.

Hierarchical clustering as PyLate applies it at indexing time: the first vector (the [CLS]
position) is kept as is; the others are clustered by Ward linkage, taking each row of the cosine
distance matrix ``1 - V Vᵀ`` as an observation, and the tree is cut into
``max(1, n // pool_factor)`` clusters (``fcluster``, ``maxclust``). Each cluster becomes the mean
of its vectors. Unlike PyLate, the means are re-normalised to unit length, so pooled documents
keep the property every other document vector has and scores stay on the same scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgecolbert.errors import InvalidInputError, require

# The [CLS] vector summarises the whole text; PyLate leaves it out of the clustering.
PROTECTED_TOKENS = 1


def check_pool_factor(pool_factor: int) -> int:
    if not isinstance(pool_factor, (int, np.integer)) or isinstance(pool_factor, bool) or pool_factor < 1:
        raise InvalidInputError(f"pool_factor must be a positive integer (1 turns pooling off), got {pool_factor!r}.")
    return int(pool_factor)


def pool_tokens(vectors: np.ndarray, pool_factor: int, *, protected_tokens: int = PROTECTED_TOKENS) -> np.ndarray:
    """One document's ``[n, dim]`` unit vectors pooled to ``protected + max(1, (n - protected) // pool_factor)``.

    ``pool_factor`` 1 returns the input unchanged; documents too short to cluster are returned as they are.
    """
    pool_factor = check_pool_factor(pool_factor)
    if pool_factor == 1 or vectors.shape[0] - protected_tokens < 2:
        return vectors
    hierarchy = require("scipy.cluster.hierarchy", "pooling", "Token pooling", instead="pass pool_factor=1")

    kept, rest = vectors[:protected_tokens], vectors[protected_tokens:].astype(np.float64)
    distances = 1.0 - rest @ rest.T
    tree = hierarchy.linkage(distances, method="ward")
    n_clusters = max(1, rest.shape[0] // pool_factor)
    labels = hierarchy.fcluster(tree, t=n_clusters, criterion="maxclust")
    # Labels run from 1; sums per label divided by counts give every cluster's mean in one pass.
    sums = np.zeros((int(labels.max()), rest.shape[1]), dtype=np.float64)
    np.add.at(sums, labels - 1, rest)
    counts = np.bincount(labels - 1)
    means = sums[counts > 0] / counts[counts > 0, None]
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.concatenate([kept, means.astype(vectors.dtype)])


def pool_documents(documents: Sequence[np.ndarray], pool_factor: int) -> list[np.ndarray]:
    """:func:`pool_tokens` over each document."""
    pool_factor = check_pool_factor(pool_factor)
    return [pool_tokens(doc, pool_factor) for doc in documents]
