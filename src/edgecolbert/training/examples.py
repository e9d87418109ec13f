"""Training examples: (query, positive[, negatives][, teacher scores]) from a BEIR folder or a JSONL file."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecolbert.errors import TrainingDataError
from edgecolbert.sources.beir import iter_corpus, load_qrels, load_queries
from edgecolbert.sources.jsonl import jsonl_records


@dataclass(frozen=True)
class TrainingExample:
    """One query with a relevant document, optional hard negatives, and optional teacher scores.

    ``scores`` (when set) holds the teacher's score of ``positive`` followed by one per negative.
    """

    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    scores: tuple[float, ...] | None = None

    @property
    def documents(self) -> tuple[str, ...]:
        return (self.positive, *self.negatives)

    def with_negatives(self, negatives: Sequence[str]) -> TrainingExample:
        return replace(self, negatives=tuple(negatives), scores=None)


@dataclass(frozen=True)
class TrainingData:
    """Examples plus what mining needs: a pool of documents, and each query's relevant ones.

    A document judged relevant to a query must never be mined as that query's negative, so
    ``relevant`` maps each query text to every relevant document text, not only the one in
    each example.
    """

    examples: tuple[TrainingExample, ...]
    pool: tuple[str, ...]
    relevant: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def replace_examples(self, examples: Sequence[TrainingExample]) -> TrainingData:
        return replace(self, examples=tuple(examples))


def load_training_data(source: str | os.PathLike[str], split: str = "train") -> TrainingData:
    """A BEIR-layout folder (``queries.jsonl``, ``corpus.jsonl``, ``qrels/<split>.tsv``) or a JSONL file.

    JSONL lines are objects with ``query`` and ``positive`` (strings), optionally ``negatives`` (a
    list of strings, or ``negative`` for one) and ``scores`` (teacher scores for the positive then
    each negative).
    """
    path = Path(source)
    if path.is_dir():
        return _from_beir(path, split)
    if path.is_file():
        return _from_jsonl(path)
    raise TrainingDataError(f"{path} does not exist: pass a BEIR-layout folder or a JSONL file of examples.")


def _from_beir(folder: Path, split: str) -> TrainingData:
    queries = load_queries(folder)
    qrels = load_qrels(folder, split)
    corpus = {document.id: document.full_text for document in iter_corpus(folder)}
    missing_queries = sorted(query_id for query_id in qrels if query_id not in queries)
    if missing_queries:
        raise TrainingDataError(
            f"{folder}/qrels/{split}.tsv judges {len(missing_queries)} queries that queries.jsonl lacks "
            f"(first: {missing_queries[0]!r})."
        )
    missing_docs = sorted({doc_id for judged in qrels.values() for doc_id in judged if doc_id not in corpus})
    if missing_docs:
        raise TrainingDataError(
            f"{folder}/qrels/{split}.tsv judges {len(missing_docs)} documents that corpus.jsonl lacks "
            f"(first: {missing_docs[0]!r})."
        )
    examples: list[TrainingExample] = []
    relevant: dict[str, frozenset[str]] = {}
    for query_id, judged in qrels.items():
        positives = [corpus[doc_id] for doc_id, grade in judged.items() if grade > 0]
        query = queries[query_id]
        relevant[query] = relevant.get(query, frozenset()) | frozenset(positives)
        examples.extend(TrainingExample(query=query, positive=positive) for positive in positives)
    if not examples:
        raise TrainingDataError(f"{folder}/qrels/{split}.tsv has no positive judgment (grade > 0) to train on.")
    return TrainingData(examples=tuple(examples), pool=tuple(corpus.values()), relevant=relevant)


def _from_jsonl(path: Path) -> TrainingData:
    examples = [
        _example(record, f"{path} line {line_no}") for line_no, record in jsonl_records(path, TrainingDataError)
    ]
    if not examples:
        raise TrainingDataError(f"{path} holds no examples.")
    relevant: dict[str, frozenset[str]] = {}
    for example in examples:
        relevant[example.query] = relevant.get(example.query, frozenset()) | {example.positive}
    # Without a corpus, every document the file mentions is a candidate negative for the other queries.
    pool = tuple(dict.fromkeys(document for example in examples for document in example.documents))
    return TrainingData(examples=tuple(examples), pool=pool, relevant=relevant)


def _example(record: Mapping[str, Any], where: str) -> TrainingExample:
    query = _text(record, "query", where)
    positive = _text(record, "positive", where)
    negatives = _negatives(record, where)
    scores = _scores(record, 1 + len(negatives), where)
    return TrainingExample(query=query, positive=positive, negatives=negatives, scores=scores)


def _text(record: Mapping[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TrainingDataError(f"{where}: {key!r} should be a non-empty string, got {value!r:.80}.")
    return value


def _negatives(record: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if "negatives" in record and "negative" in record:
        raise TrainingDataError(f"{where}: give 'negatives' (a list) or 'negative' (one string), not both.")
    value = record.get("negatives", [record["negative"]] if "negative" in record else [])
    if not isinstance(value, list) or not all(isinstance(text, str) and text.strip() for text in value):
        raise TrainingDataError(f"{where}: 'negatives' should be a list of non-empty strings.")
    return tuple(value)


def _scores(record: Mapping[str, Any], expected: int, where: str) -> tuple[float, ...] | None:
    value = record.get("scores")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not all(isinstance(score, (int, float)) and not isinstance(score, bool) for score in value)
        or not all(math.isfinite(score) for score in value)
    ):
        raise TrainingDataError(f"{where}: 'scores' should be a list of finite numbers.")
    if len(value) != expected:
        raise TrainingDataError(
            f"{where}: 'scores' has {len(value)} numbers; it needs one for the positive and one per negative "
            f"({expected})."
        )
    return tuple(float(score) for score in value)


def write_examples(path: Path, examples: Sequence[TrainingExample]) -> None:
    """Save examples as training JSONL (the format :func:`load_training_data` reads), atomically."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for example in examples:
            record: dict[str, Any] = {"query": example.query, "positive": example.positive}
            if example.negatives:
                record["negatives"] = list(example.negatives)
            if example.scores is not None:
                record["scores"] = list(example.scores)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)
