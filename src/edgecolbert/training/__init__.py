"""Fine-tuning a late-interaction model on a user's own queries and documents."""

from typing import TYPE_CHECKING

from edgecolbert._lazy import lazy_exports
from edgecolbert.errors import TrainingDataError, TrainingError

# The command line registers `train` from this package; torch loads only when training runs.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TrainingData": "edgecolbert.training.examples",
        "TrainingExample": "edgecolbert.training.examples",
        "load_training_data": "edgecolbert.training.examples",
        "train": "edgecolbert.training.fine_tune",
        "TrainReport": "edgecolbert.training.settings",
        "TrainSettings": "edgecolbert.training.settings",
    },
)

if TYPE_CHECKING:
    from edgecolbert.training.examples import TrainingData, TrainingExample, load_training_data
    from edgecolbert.training.fine_tune import train
    from edgecolbert.training.settings import TrainReport, TrainSettings

__all__ = [
    "TrainReport",
    "TrainSettings",
    "TrainingData",
    "TrainingDataError",
    "TrainingError",
    "TrainingExample",
    "load_training_data",
    "train",
]
