"""Read retrieval test collections in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgecolbert.errors import DatasetError
from edgecolbert.sources.jsonl import IdRegister, jsonl_records


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """Title and body as BEIR's evaluation scripts join them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


def iter_corpus(folder: str | Path) -> Iterator[Document]:
    """Stream ``corpus.jsonl`` one document at a time.

    An exact repeat of an earlier line is left out; one id on two different lines raises.
    """
    path = Path(folder) / "corpus.jsonl"
    register = IdRegister(path, DatasetError)
    for line_no, record in _jsonl(path):
        if "_id" not in record or "text" not in record:
            raise DatasetError(f"{folder}/corpus.jsonl line {line_no} lacks '_id' or 'text'.")
        document = Document(id=str(record["_id"]), title=str(record.get("title") or ""), text=str(record["text"]))
        if not register.is_repeat(document.id, line_no, [document.title, document.text]):
            yield document


def load_queries(folder: str | Path) -> dict[str, str]:
    queries = {}
    for line_no, record in _jsonl(Path(folder) / "queries.jsonl"):
        if "_id" not in record or "text" not in record:
            raise DatasetError(f"{folder}/queries.jsonl line {line_no} lacks '_id' or 'text'.")
        queries[str(record["_id"])] = str(record["text"])
    return queries


def load_qrels(folder: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: grade}}`` from ``qrels/<split>.tsv`` (header row optional)."""
    path = Path(folder) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: no judgments for split {split!r}.")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if row_no == 1 and row and not row[-1].lstrip("-").isdigit():
                continue
            if len(row) < 3:
                raise DatasetError(f"{path} row {row_no} should be query-id, corpus-id, score.")
            try:
                grade = int(row[-1])
            except ValueError:
                raise DatasetError(f"{path} row {row_no}: the score {row[-1]!r} is not an integer.") from None
            qrels.setdefault(row[0], {})[row[1]] = grade
    return qrels


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist.")
    return jsonl_records(path, DatasetError)
