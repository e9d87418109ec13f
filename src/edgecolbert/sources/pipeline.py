"""The indexing pipeline: read a path, batch, encode, upsert, with progress and resume."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecolbert.sources.paths import count_documents, read_documents
from edgecolbert.store.base import AddReport, BaseStore
from edgecolbert.store.edge import EdgeStore


@dataclass
class IndexSummary:
    report: AddReport
    seconds: float

    @property
    def documents_per_second(self) -> float:
        return self.report.seen / self.seconds if self.seconds > 0 else 0.0


def index_path(
    target: BaseStore,
    path: str | os.PathLike[str],
    *,
    batch_size: int = 128,
    progress: bool = True,
    on_batch: Callable[[list[str]], None] | None = None,
) -> IndexSummary:
    """Index every document under ``path`` into ``target``.

    Text files are split into passages that fit the model's document length, counted with its own
    tokenizer. Running the same command again skips what is stored, so an interrupted run resumes.
    """
    tokenizer = target.model.tokenizer
    documents = read_documents(
        Path(path),
        count_tokens=lambda texts: tokenizer.count(list(texts), "document"),
        max_tokens=tokenizer.document_length,
    )
    started = time.perf_counter()
    report = target.add_documents(
        documents, batch_size=batch_size, progress=progress, total=count_documents(path), on_batch=on_batch
    )
    if isinstance(target, EdgeStore) and report.added + report.reencoded:
        target.optimize()
    return IndexSummary(report=report, seconds=time.perf_counter() - started)
