"""The model a user gets without naming one; read by the command line before any model code is imported."""

from __future__ import annotations

import os

DEFAULT_MODEL = "mixedbread-ai/mxbai-edge-colbert-v0-17m"
MODEL_ENV_VAR = "EDGECOLBERT_MODEL"


def default_model_name() -> str:
    """The model a user gets without naming one: ``$EDGECOLBERT_MODEL``, else mxbai-edge-colbert-v0-17m."""
    return os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL
