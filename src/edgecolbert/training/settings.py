"""What a fine-tuning run takes, and what it reports."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LossName = Literal["auto", "contrastive", "distillation", "both"]


class TrainSettings(BaseModel):
    """Settings of :func:`~edgecolbert.training.train`; the CLI flags of ``edgecolbert train`` map onto these.

    ``negatives_from`` is ``"bm25"`` (BM25 over the training corpus, or over every document of a
    JSONL file) or the folder of an existing embedded store, whose first stage then ranks the
    candidates. ``loss="auto"`` trains contrastively, adding KL distillation when teacher scores
    exist (from ``teacher`` or a ``scores`` field in the training JSONL).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    train: Path
    out: Path
    split: str = "train"
    teacher: str | None = None
    loss: LossName = "auto"
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(16, ge=2, description="examples per step; the other examples' documents are negatives")
    mini_batch_size: int = Field(8, ge=1, description="texts per forward pass: bounds memory, not the result")
    lr: float = Field(2e-5, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    negatives: int = Field(1, ge=0, description="hard negatives per example")
    negatives_from: str = "bm25"
    mining_depth: int = Field(30, ge=1, description="negatives are sampled from the first stage's top N")
    temperature: float = Field(1.0, gt=0)
    save_steps: int = Field(100, ge=1)
    save_total_limit: int = Field(2, ge=1)
    seed: int = 42
    resume: bool = False
    overwrite: bool = False
    device: str | None = None
    progress: bool = True


class TrainReport(BaseModel):
    """What a finished run did; saved as ``training.json`` beside the model."""

    model_config = ConfigDict(frozen=True)

    base_model: str
    out: str
    losses: tuple[str, ...]
    examples: int
    steps: int
    epochs: float
    seconds: float
    examples_per_second: float
    final_loss: float | None
    resumed_from_step: int | None
    settings: TrainSettings
