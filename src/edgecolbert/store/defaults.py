"""Where a store lives unless told otherwise; read by the command line before any engine is imported."""

DEFAULT_STORE_PATH = "./edgecolbert_data"
DEFAULT_COLLECTION = "edgecolbert"
URL_ENV_VAR = "QDRANT_URL"
API_KEY_ENV_VAR = "QDRANT_API_KEY"
