"""A small collection where the relevant document uses other words than its query, for training tests.

Each document holds three words of list B among filler; its query holds the matching words of list
A. Nothing but training links A-words to B-words, so an untrained model ranks at random, and what
a model learns from some queries carries over to held-out queries with other word combinations.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

QUERY_WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "music",
    "paper",
    "glass",
    "window",
    "forest",
    "engine",
    "silver",
    "dragon",
    "candle",
    "garden",
]
DOCUMENT_WORDS = [
    "table",
    "yellow",
    "horse",
    "planet",
    "ocean",
    "letter",
    "doctor",
    "button",
    "summer",
    "castle",
    "mirror",
    "pencil",
    "flower",
    "hammer",
    "jacket",
]
FILLER = [
    "the",
    "of",
    "and",
    "a",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "it",
    "that",
    "this",
]


def synonym_collection(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` (query, document) pairs; the i-th query is relevant to the i-th document only."""
    rng = random.Random(seed)
    queries, documents = [], []
    for _ in range(n):
        picks = rng.sample(range(len(QUERY_WORDS)), 3)
        words = [DOCUMENT_WORDS[i] for i in picks] + rng.sample(FILLER, 6)
        rng.shuffle(words)
        documents.append(" ".join(words))
        queries.append(" ".join(QUERY_WORDS[i] for i in picks))
    return queries, documents


def write_pairs(path: Path, queries: list[str], documents: list[str]) -> Path:
    path.write_text("".join(json.dumps({"query": q, "positive": d}) + "\n" for q, d in zip(queries, documents)))
    return path
