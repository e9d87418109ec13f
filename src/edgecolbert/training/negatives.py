"""Hard negatives: documents the first stage ranks high for a query that are not judged relevant to it."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence

from edgecolbert.errors import TrainingDataError, require
from edgecolbert.store.base import MultiVectorStore
from edgecolbert.store.stages import FirstStageName
from edgecolbert.training.examples import TrainingData, TrainingExample

logger = logging.getLogger(__name__)

# Ranked candidates for each query text, best first.
Ranker = Callable[[Sequence[str], int], Mapping[str, Sequence[str]]]


def fill_negatives(
    data: TrainingData, per_example: int, ranker: Ranker, *, depth: int = 30, seed: int = 0
) -> TrainingData:
    """Give every example exactly ``per_example`` negatives.

    Negatives an example already has come first (extra ones are dropped); the rest are drawn at
    random, reproducibly from ``seed``, among the first stage's top ``depth`` documents for the
    query that are not relevant to it. Sampling from a band rather than taking the very top keeps
    unjudged relevant documents, which crowd the first ranks, from dominating the negatives.
    """
    if per_example < 0:
        raise TrainingDataError(f"negatives per example must be 0 or more, got {per_example}.")
    if depth < per_example:
        raise TrainingDataError(
            f"the mining depth ({depth}) must be at least the negatives per example ({per_example})."
        )
    wanting = sorted({example.query for example in data.examples if len(example.negatives) < per_example})
    ranked = ranker(wanting, depth + _most_relevant(data)) if wanting else {}
    rng = random.Random(seed)
    examples = [_filled(example, per_example, ranked, data.relevant, depth, rng) for example in data.examples]
    return data.replace_examples(examples)


def _most_relevant(data: TrainingData) -> int:
    return max((len(documents) for documents in data.relevant.values()), default=1)


def _filled(
    example: TrainingExample,
    per_example: int,
    ranked: Mapping[str, Sequence[str]],
    relevant: Mapping[str, frozenset[str]],
    depth: int,
    rng: random.Random,
) -> TrainingExample:
    if len(example.negatives) >= per_example:
        kept = example.negatives[:per_example]
        scores = example.scores[: 1 + per_example] if example.scores is not None else None
        return TrainingExample(example.query, example.positive, kept, scores)
    excluded = relevant.get(example.query, frozenset()) | {example.positive, *example.negatives}
    band = [text for text in dict.fromkeys(ranked.get(example.query, ())) if text not in excluded][:depth]
    needed = per_example - len(example.negatives)
    if len(band) < needed:
        raise TrainingDataError(
            f"the first stage found only {len(band)} non-relevant documents for the query {example.query[:60]!r}; "
            f"{needed} more negatives are needed. Lower the negatives per example or add documents."
        )
    return example.with_negatives([*example.negatives, *rng.sample(band, needed)])


def bm25_ranker(pool: Sequence[str]) -> Ranker:
    """BM25 (bm25s, English stopwords) over ``pool``: what the negatives are mined from by default."""
    bm25s = require("bm25s", "train", "Mining hard negatives with BM25")
    if not pool:
        raise TrainingDataError("there are no documents to mine negatives from.")
    # bm25s sets its own logger to DEBUG, which would print through an application's root handler.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(pool), stopwords="en", show_progress=False), show_progress=False)

    def rank(queries: Sequence[str], k: int) -> dict[str, list[str]]:
        k = min(k, len(pool))
        tokens = bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
        indices, _ = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return {query: [pool[i] for i in row] for query, row in zip(queries, indices.tolist(), strict=True)}

    return rank


def store_ranker(store: MultiVectorStore, first_stage: FirstStageName | None = None) -> Ranker:
    """The first stage of an existing store (its BM25, dense or hybrid), by the stored texts."""

    def rank(queries: Sequence[str], k: int) -> dict[str, list[str]]:
        ranked = {}
        for query in queries:
            hits = store.search_first_stage(query, top_k=k, first_stage=first_stage)
            ranked[query] = [hit.text for hit in hits if hit.text]
        return ranked

    return rank
