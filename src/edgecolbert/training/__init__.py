"""Fine-tuning a late-interaction model on a user's own queries and documents."""

from edgecolbert.errors import TrainingDataError, TrainingError
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
