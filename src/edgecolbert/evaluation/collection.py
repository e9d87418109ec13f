"""A BEIR-layout collection prepared for evaluation: the judged queries, their judgments, the corpus hash."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgecolbert.errors import DatasetError, InvalidInputError
from edgecolbert.sources.beir import iter_corpus, load_qrels, load_queries

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class JudgedCollection:
    """What an evaluation runs on. ``queries`` keeps the order of queries.jsonl."""

    folder: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_size: int
    corpus_hash: str


def load_collection(
    folder: str | os.PathLike[str], split: str = "test", max_queries: int | None = None
) -> JudgedCollection:
    """Read and check a BEIR-layout folder before any model is loaded, so a bad dataset fails fast.

    Only queries with at least one positive judgment count: a query nobody found a relevant
    document for has no ideal ranking to compare with. Every corpus line is parsed here, so a
    malformed corpus is reported before hours of encoding rather than in the middle of them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} is not a folder; pass a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/)."
        )
    if max_queries is not None and (
        isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1
    ):
        raise InvalidInputError(f"max_queries must be a positive integer or None; got {max_queries!r}.")
    _check_split(folder, split)
    qrels = load_qrels(folder, split)
    queries = load_queries(folder)
    judged = _judged_queries(folder, split, queries, qrels)
    if max_queries is not None:
        judged = dict(list(judged.items())[:max_queries])
    corpus_size = sum(1 for _ in iter_corpus(folder))
    if corpus_size == 0:
        raise DatasetError(f"{folder}/corpus.jsonl holds no documents.")
    return JudgedCollection(
        folder=folder,
        split=split,
        queries=judged,
        qrels={query_id: qrels[query_id] for query_id in judged},
        corpus_size=corpus_size,
        corpus_hash=corpus_hash(folder),
    )


def corpus_hash(folder: str | Path) -> str:
    """SHA-256 of corpus.jsonl's bytes: any edit to the corpus means new document vectors."""
    digest = hashlib.sha256()
    with (Path(folder) / "corpus.jsonl").open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_split(folder: Path, split: str) -> None:
    if (folder / "qrels" / f"{split}.tsv").is_file():
        return
    available = sorted(path.stem for path in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
    hint = f"available splits: {', '.join(available)}" if available else "the folder has no qrels/*.tsv at all"
    raise DatasetError(f"{folder} has no judgments for split {split!r} (qrels/{split}.tsv); {hint}.")


def _judged_queries(
    folder: Path, split: str, queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> dict[str, str]:
    positive = {query_id for query_id, grades in qrels.items() if any(grade > 0 for grade in grades.values())}
    missing = sorted(positive - queries.keys())
    if missing:
        logger.warning(
            "%d judged queries of split %r are not in %s/queries.jsonl and are left out (first: %r).",
            len(missing),
            split,
            folder,
            missing[0],
        )
    judged = {query_id: text for query_id, text in queries.items() if query_id in positive}
    if not judged:
        raise DatasetError(
            f"{folder}: split {split!r} has no query with a positive judgment that is in queries.jsonl; "
            "nothing can be evaluated. Check qrels/<split>.tsv (query-id, corpus-id, score > 0)."
        )
    blank = [query_id for query_id, text in judged.items() if not text.strip()]
    if blank:
        raise DatasetError(f"{folder}/queries.jsonl: judged query {blank[0]!r} has empty text; give it a text.")
    return judged
