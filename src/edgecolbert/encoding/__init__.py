"""Text to token vectors: checkpoint formats, tokenization, the backbone and its backends, projection, pooling."""

from typing import TYPE_CHECKING

from edgecolbert._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_MODEL": "edgecolbert.encoding.defaults",
        "ColBERT": "edgecolbert.encoding.encoder",
    },
)

if TYPE_CHECKING:
    from edgecolbert.encoding.defaults import DEFAULT_MODEL
    from edgecolbert.encoding.encoder import ColBERT

__all__ = ["DEFAULT_MODEL", "ColBERT"]
