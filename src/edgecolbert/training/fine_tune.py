"""Fine-tuning on sentence-transformers' MultiVectorEncoder trainer: data → negatives → teacher → train → save."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecolbert.errors import TrainingError, require
from edgecolbert.training.examples import TrainingData, TrainingExample, load_training_data, write_examples
from edgecolbert.training.negatives import Ranker, bm25_ranker, fill_negatives, store_ranker
from edgecolbert.training.progress import ExamplesPerSecond
from edgecolbert.training.settings import TrainReport, TrainSettings
from edgecolbert.training.teacher import attach_teacher_scores

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
PREPARED_EXAMPLES = "training-set.jsonl"
REPORT = "training.json"


def train(settings: TrainSettings) -> TrainReport:
    """Fine-tune ``settings.model`` and save it in ``settings.out`` as a normal checkpoint.

    The prepared examples (with their mined negatives and teacher scores) are written to
    ``out/training-set.jsonl`` first and checkpoints to ``out/checkpoints/`` every
    ``save_steps`` steps, so ``resume=True`` continues an interrupted run from its last checkpoint
    with exactly the same data.
    """
    started = time.perf_counter()
    _require_training_packages()
    resuming = _prepare_out(settings)
    examples = _examples(settings, resuming)
    losses = _loss_names(settings, examples)
    model = _load_model(settings)
    trainer, progress = _trainer(settings, model, examples, losses)
    logger.info("Training on %d examples with %s", len(examples), " + ".join(losses))
    resume_step = _last_checkpoint_step(settings.out) if resuming else None
    output = trainer.train(resume_from_checkpoint=True if resuming else None)
    model.save(str(settings.out))
    report = TrainReport(
        base_model=settings.model,
        out=str(settings.out),
        losses=losses,
        examples=len(examples),
        steps=trainer.state.global_step,
        epochs=float(trainer.state.epoch or 0.0),
        seconds=time.perf_counter() - started,
        examples_per_second=progress.rate,
        final_loss=_final_loss(trainer.state.log_history, output.training_loss),
        resumed_from_step=resume_step,
        settings=settings,
    )
    (settings.out / REPORT).write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return report


def _require_training_packages() -> None:
    for module in ("sentence_transformers", "datasets", "accelerate"):
        require(module, "train", "Training")


def _prepare_out(settings: TrainSettings) -> bool:
    """Make the output folder ready; True when an earlier run's checkpoints will be continued."""
    out = settings.out
    if out.exists() and not out.is_dir():
        raise TrainingError(f"{out} is a file; the output must be a folder.")
    has_checkpoints = _last_checkpoint_step(out) is not None
    if settings.overwrite:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        (out / PREPARED_EXAMPLES).unlink(missing_ok=True)
        has_checkpoints = False
    elif has_checkpoints and not settings.resume:
        raise TrainingError(
            f"{out} holds checkpoints of an earlier run: pass --resume to continue it, or --overwrite to start over."
        )
    elif settings.resume and not has_checkpoints:
        logger.info("Nothing to resume in %s: starting from the beginning.", out)
    out.mkdir(parents=True, exist_ok=True)
    return settings.resume and has_checkpoints


def _last_checkpoint_step(out: Path) -> int | None:
    steps = [
        int(folder.name.split("-", 1)[1])
        for folder in (out / CHECKPOINTS).glob("checkpoint-*")
        if folder.is_dir() and folder.name.split("-", 1)[1].isdigit()
    ]
    return max(steps, default=None)


def _examples(settings: TrainSettings, resuming: bool) -> list[TrainingExample]:
    prepared = settings.out / PREPARED_EXAMPLES
    if resuming and prepared.is_file():
        logger.info("Resuming with the examples prepared in %s", prepared)
        return list(load_training_data(prepared).examples)
    data = load_training_data(settings.train, settings.split)
    if settings.negatives:
        data = fill_negatives(
            data, settings.negatives, _ranker(settings, data), depth=settings.mining_depth, seed=settings.seed
        )
    examples = list(data.examples)
    if settings.teacher is not None:
        examples = attach_teacher_scores(examples, settings.teacher, device=settings.device)
    write_examples(prepared, examples)
    return examples


def _ranker(settings: TrainSettings, data: TrainingData) -> Ranker:
    if settings.negatives_from == "bm25":
        return bm25_ranker(data.pool)
    folder = Path(settings.negatives_from)
    if not folder.is_dir():
        raise TrainingError(f"negatives_from is 'bm25' or the folder of an embedded store; {folder} is not a folder.")
    from edgecolbert.store.edge import EdgeStore

    store = EdgeStore(folder)
    ranker = store_ranker(store)

    def rank_then_close(queries: Sequence[str], k: int) -> Any:
        try:
            return ranker(queries, k)
        finally:
            store.close()

    return rank_then_close


def _loss_names(settings: TrainSettings, examples: Sequence[TrainingExample]) -> tuple[str, ...]:
    scored = all(example.scores is not None for example in examples)
    chosen = settings.loss
    if chosen == "auto":
        chosen = "both" if scored else "contrastive"
    if chosen in ("distillation", "both"):
        if not scored:
            raise TrainingError(
                "distillation needs teacher scores for every example: pass a teacher, or give 'scores' in the JSONL."
            )
        if not all(example.negatives for example in examples):
            raise TrainingError("distillation needs at least one negative per example (negatives >= 1).")
    return {
        "contrastive": ("contrastive",),
        "distillation": ("distillation",),
        "both": ("contrastive", "distillation"),
    }[chosen]


def _load_model(settings: TrainSettings) -> Any:
    from sentence_transformers import MultiVectorEncoder

    return MultiVectorEncoder(settings.model, device=settings.device)


def _trainer(
    settings: TrainSettings, model: Any, examples: Sequence[TrainingExample], losses: Sequence[str]
) -> tuple[Any, ExamplesPerSecond]:
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    single = len(losses) == 1
    datasets = {name: _dataset(name, examples) for name in losses}
    loss_modules = {name: _loss(name, model, settings) for name in losses}
    args = MultiVectorEncoderTrainingArguments(
        output_dir=str(settings.out / CHECKPOINTS),
        per_device_train_batch_size=settings.batch_size,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        learning_rate=settings.lr,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of the steps
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        logging_steps=max(1, min(10, settings.save_steps)),
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=settings.device == "cpu",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.ROUND_ROBIN,
        prompts=_prompts(model, datasets, single),
        disable_tqdm=True,
        report_to="none",
    )
    trainer = MultiVectorEncoderTrainer(
        model=model,
        args=args,
        train_dataset=datasets[losses[0]] if single else datasets,
        loss=loss_modules[losses[0]] if single else loss_modules,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    progress = ExamplesPerSecond(settings.batch_size, enabled=settings.progress)
    trainer.add_callback(progress)
    return trainer, progress


def _dataset(loss: str, examples: Sequence[TrainingExample]) -> Any:
    from datasets import Dataset

    negatives = len(examples[0].negatives)
    columns: dict[str, list[Any]] = {"query": [example.query for example in examples]}
    columns["positive"] = [example.positive for example in examples]
    for i in range(negatives):
        columns[f"negative_{i + 1}"] = [example.negatives[i] for example in examples]
    if loss == "distillation":
        columns["label"] = [list(example.scores or ()) for example in examples]
    return Dataset.from_dict(columns)


def _loss(name: str, model: Any, settings: TrainSettings) -> Any:
    from sentence_transformers.multi_vector_encoder.losses import (
        CachedMultiVectorMultipleNegativesRankingLoss,
        MultiVectorDistillKLDivLoss,
    )

    if name == "contrastive":
        # The cached variant runs the forward in chunks of mini_batch_size texts, so memory stays bounded
        # whatever the batch size, while the batch still supplies all its in-batch negatives.
        return CachedMultiVectorMultipleNegativesRankingLoss(
            model, scale=1.0 / settings.temperature, mini_batch_size=settings.mini_batch_size
        )
    return MultiVectorDistillKLDivLoss(
        model, temperature=settings.temperature, mini_batch_size=settings.mini_batch_size
    )


def _prompts(model: Any, datasets: dict[str, Any], single: bool) -> dict[str, Any] | None:
    """The model's query / document prefixes (PyLate's "[Q] " / "[D] "), per column, as inference adds them."""
    query = (model.prompts or {}).get("query", "")
    document = (model.prompts or {}).get("document", "")
    if not query and not document:
        return None
    per_dataset = {
        name: {column: query if column == "query" else document for column in dataset.column_names if column != "label"}
        for name, dataset in datasets.items()
    }
    # One dataset takes a flat column mapping; several take one mapping per dataset name.
    return next(iter(per_dataset.values())) if single else per_dataset


def _final_loss(history: Sequence[dict[str, Any]], average: float | None) -> float | None:
    for entry in reversed(history):
        if "loss" in entry:
            return float(entry["loss"])
    return float(average) if average is not None else None


__all__ = ["PREPARED_EXAMPLES", "REPORT", "TrainingError", "train"]
