"""A training progress bar that shows examples per second and the running loss."""

from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class ExamplesPerSecond(TrainerCallback):
    """Replaces the trainer's own bar, which counts steps, with one that counts examples too.

    ``examples_per_step`` is the batch size; the rate covers this run's steps only, so a resumed
    run does not count the steps it skipped.
    """

    def __init__(self, examples_per_step: int, enabled: bool = True) -> None:
        self.examples_per_step = examples_per_step
        self.enabled = enabled
        self.bar: Any = None
        self.first_step = 0
        self.started = 0.0
        self.rate = 0.0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self.first_step = state.global_step
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc="training",
            unit="step",
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        elapsed = time.perf_counter() - self.started
        done = state.global_step - self.first_step
        self.rate = done * self.examples_per_step / elapsed if elapsed > 0 else 0.0
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.set_postfix({"examples/s": f"{self.rate:.1f}", **self._loss(state)}, refresh=False)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @staticmethod
    def _loss(state: TrainerState) -> dict[str, str]:
        for entry in reversed(state.log_history):
            if "loss" in entry:
                return {"loss": f"{entry['loss']:.4f}"}
        return {}
