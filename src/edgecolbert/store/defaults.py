"""Where a store lives unless told otherwise, and how it can search; read by the command line before any engine
is imported."""

from typing import Literal, get_args

DEFAULT_STORE_PATH = "./edgecolbert_data"
DEFAULT_COLLECTION = "edgecolbert"
URL_ENV_VAR = "QDRANT_URL"
API_KEY_ENV_VAR = "QDRANT_API_KEY"

FirstStageName = Literal["bm25", "dense", "hybrid"]
FIRST_STAGES: tuple[FirstStageName, ...] = get_args(FirstStageName)
"""The first stages a store search can use: BM25, the dense vector, or both fused with RRF."""
