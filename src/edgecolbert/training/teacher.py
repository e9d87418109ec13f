"""Teacher scores for distillation: from a JSONL table of scores, or computed by a teacher checkpoint."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from edgecolbert.encoding.checkpoint import resolve_checkpoint_dir
from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import TrainingDataError, require
from edgecolbert.scoring.maxsim import maxsim
from edgecolbert.sources.jsonl import jsonl_records
from edgecolbert.training.examples import TrainingExample

logger = logging.getLogger(__name__)


def attach_teacher_scores(
    examples: Sequence[TrainingExample], teacher: str | os.PathLike[str], *, device: str | None = None
) -> list[TrainingExample]:
    """Examples with ``scores`` set for the positive and every negative.

    ``teacher`` is a ``.jsonl`` file of ``{"query", "document", "score"}`` lines, or a checkpoint (a
    folder or hub id): a cross-encoder (a sequence-classification model, as sentence-transformers'
    ``CrossEncoder`` loads) or any late-interaction model edgecolbert loads, scored with MaxSim.
    """
    path = Path(os.fspath(teacher))
    if path.is_file():
        return _from_table(examples, path)
    folder = resolve_checkpoint_dir(teacher)
    if _is_cross_encoder(folder):
        return _from_cross_encoder(examples, folder, device)
    return _from_colbert(examples, ColBERT.from_pretrained(folder, device=device))


def _from_table(examples: Sequence[TrainingExample], path: Path) -> list[TrainingExample]:
    table: dict[tuple[str, str], float] = {}
    for line_no, record in jsonl_records(path, TrainingDataError):
        query, document, score = record.get("query"), record.get("document"), record.get("score")
        if not isinstance(query, str) or not isinstance(document, str):
            raise TrainingDataError(f"{path} line {line_no}: 'query' and 'document' should be strings.")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise TrainingDataError(f"{path} line {line_no}: 'score' should be a finite number.")
        table[(query, document)] = float(score)
    missing = [(ex.query, doc) for ex in examples for doc in ex.documents if (ex.query, doc) not in table]
    if missing:
        query, document = missing[0]
        raise TrainingDataError(
            f"{path} lacks teacher scores for {len(missing)} (query, document) pairs, e.g. "
            f"({query[:60]!r}, {document[:60]!r}). Score every positive and negative, or pass a teacher model."
        )
    return [_scored(ex, [table[(ex.query, doc)] for doc in ex.documents]) for ex in examples]


def _is_cross_encoder(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])


def _from_cross_encoder(examples: Sequence[TrainingExample], folder: Path, device: str | None) -> list[TrainingExample]:
    sentence_transformers = require("sentence_transformers", "train", "A cross-encoder teacher")
    teacher = sentence_transformers.CrossEncoder(str(folder), device=device)
    pairs = [(ex.query, doc) for ex in examples for doc in ex.documents]
    logger.info("Scoring %d pairs with the cross-encoder teacher %s", len(pairs), folder)
    flat = [float(score) for score in teacher.predict(pairs, batch_size=32, show_progress_bar=False)]
    return _split_scores(examples, flat)


def _from_colbert(examples: Sequence[TrainingExample], teacher: ColBERT) -> list[TrainingExample]:
    logger.info("Scoring %d examples with the late-interaction teacher %s", len(examples), teacher.name)
    scored = []
    for example in examples:
        query = teacher.encode_query(example.query)
        scores = maxsim(query, teacher.encode_documents(list(example.documents)))
        scored.append(_scored(example, [float(score) for score in scores]))
    return scored


def _split_scores(examples: Sequence[TrainingExample], flat: Sequence[float]) -> list[TrainingExample]:
    scored, start = [], 0
    for example in examples:
        end = start + len(example.documents)
        scored.append(_scored(example, flat[start:end]))
        start = end
    return scored


def _scored(example: TrainingExample, scores: Sequence[float]) -> TrainingExample:
    return TrainingExample(example.query, example.positive, example.negatives, tuple(scores))
