"""``edgecolbert train``: the command-line face of :func:`edgecolbert.training.train`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgecolbert.encoding.defaults import MODEL_ENV_VAR, default_model_name
from edgecolbert.errors import InvalidInputError


def add_train_command(commands: Any) -> None:
    """Register ``train`` on the top-level parser's subcommands."""
    train = commands.add_parser(
        "train",
        help="fine-tune a model on your own queries and documents (BEIR folder or JSONL)",
        description=(
            "Fine-tune a late-interaction model with in-batch contrastive learning over mined hard negatives, "
            "plus KL distillation when teacher scores are given. The result in --out is a normal checkpoint."
        ),
    )
    train.add_argument(
        "--model", default=None, help=f"starting checkpoint (default: ${MODEL_ENV_VAR}, else {default_model_name()})"
    )
    train.add_argument(
        "--train",
        type=Path,
        required=True,
        help="BEIR folder (queries.jsonl, corpus.jsonl, qrels/<split>.tsv) or JSONL of "
        "{query, positive[, negatives][, scores]}",
    )
    train.add_argument("--out", type=Path, required=True, help="folder for the fine-tuned model and its checkpoints")
    train.add_argument("--split", default="train", help="judgments to train on, for a BEIR folder (default: train)")
    train.add_argument(
        "--teacher",
        default=None,
        help="teacher checkpoint (cross-encoder or ColBERT) or JSONL of {query, document, score}",
    )
    train.add_argument("--loss", choices=["auto", "contrastive", "distillation", "both"], default="auto")
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (overrides --epochs)")
    train.add_argument("--batch-size", type=int, default=16, help="examples per step (in-batch negatives)")
    train.add_argument("--mini-batch-size", type=int, default=8, help="texts per forward pass; bounds memory")
    train.add_argument("--lr", type=float, default=2e-5, help="learning rate")
    train.add_argument("--negatives", type=int, default=1, help="hard negatives per example")
    train.add_argument(
        "--negatives-from", default="bm25", help="'bm25', or an embedded store folder whose first stage mines them"
    )
    train.add_argument("--mining-depth", type=int, default=30, help="negatives are drawn from the first stage's top N")
    train.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the losses")
    train.add_argument("--save-steps", type=int, default=100, help="checkpoint every N steps")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.add_argument("--overwrite", action="store_true", help="discard checkpoints of an earlier run in --out")
    train.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from edgecolbert.training import TrainSettings, train

    settings = _settings(args, TrainSettings)
    report = train(settings)
    print(
        f"trained {report.steps} steps ({report.epochs:.2f} epochs) on {report.examples} examples "
        f"with {' + '.join(report.losses)} in {report.seconds:.0f} s ({report.examples_per_second:.1f} examples/s); "
        f"final loss {report.final_loss if report.final_loss is not None else float('nan'):.4f}"
    )
    print(f"model saved to {report.out}")
    return 0


def _settings(args: argparse.Namespace, settings_type: Any) -> Any:
    try:
        return settings_type(
            model=args.model or default_model_name(),
            train=args.train,
            out=args.out,
            split=args.split,
            teacher=args.teacher,
            loss=args.loss,
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            mini_batch_size=args.mini_batch_size,
            lr=args.lr,
            negatives=args.negatives,
            negatives_from=args.negatives_from,
            mining_depth=args.mining_depth,
            temperature=args.temperature,
            save_steps=args.save_steps,
            seed=args.seed,
            resume=args.resume,
            overwrite=args.overwrite,
            device=args.device,
            progress=not args.no_progress,
        )
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(f"bad training option: {problems}") from None
