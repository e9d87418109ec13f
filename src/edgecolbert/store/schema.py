"""The collection schema both engines share, and what a store records about itself."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import InvalidInputError, ModelMismatchError

COLBERT = "colbert"
BM25 = "bm25"
DENSE = "dense"
MUVERA = "muvera"
TEXT_KEY = "text"
METADATA_KEY = "metadata"
HASH_KEY = "content_hash"
ID_KEY = "doc_id"

SCHEMA_FORMAT = 1
Datatype = Literal["float32", "float16"]
Quantization = Literal["int8"]

# Point ids derived from caller ids and content live in their own UUID namespace.
_ID_NAMESPACE = uuid.UUID("6f1d3c52-8f6e-5a57-9a55-0b7c6f3e2d41")
_TAIL_BYTES = 1 << 20
_SIMD_WIDTH = 32


class StoreSchema(BaseModel):
    """How a collection was built: written once at creation, checked on every open."""

    model_config = ConfigDict(extra="ignore")

    format: int = SCHEMA_FORMAT
    model: str
    model_identity: str
    model_dim: int
    vector_size: int
    datatype: Datatype = "float16"
    quantization: Quantization | None = None
    bm25: bool = True
    bm25_language: str = "english"
    dense_name: str | None = None
    dense_size: int | None = None
    # Token pooling of the stored document vectors; stores made before it was recorded are unpooled.
    pool_factor: int = Field(default=1, ge=1)
    # FdeParams.to_dict() of the MUVERA vector's encodings; None (and stores made before it existed): no such vector.
    muvera: dict[str, int | None] | None = None
    # False while a backfill of the MUVERA vector is under way: only some points have one yet.
    muvera_complete: bool = True
    text_key: str = TEXT_KEY
    metadata_key: str = METADATA_KEY
    layout: Literal["edgecolbert", "langchain", "llama-index"] = "edgecolbert"

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != SCHEMA_FORMAT:
            raise ValueError(
                f"store format {value} is not the format {SCHEMA_FORMAT} this edgecolbert reads; open it with the "
                "edgecolbert version that made it"
            )
        return value


def load_schema(data: object) -> StoreSchema:
    """A recorded schema; ValueError with one line per problem (not pydantic's report) when it is unusable."""
    try:
        return StoreSchema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'record'}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(problems) from None


def model_identity(model: ColBERT) -> str:
    """A portable fingerprint of the checkpoint that document vectors come from.

    The encoder's own fingerprint holds paths and mtimes (right for an in-process cache); a store
    outlives the process and may move between machines, so this one hashes the projection weights
    and the tail of the backbone weights instead. It names the checkpoint, not how it is run: the
    torch and ONNX backends, fp32 or int8, give the same identity, so a store indexed with one can
    be searched with another (int8 moves scores by a few percent of fp32's). Pooling is recorded in
    the schema's ``pool_factor`` instead. A folder made by ``edgecolbert export`` carries its
    checkpoint's identity (the weights are inside its graphs), so it opens that checkpoint's stores.
    """
    if model.origin is not None:
        return model.origin.identity
    digest = hashlib.sha256()
    spec = model.spec
    digest.update(f"{spec.layout}|{model.dim}|{spec.document_prefix}|{spec.do_lower_case}".encode())
    for path in [spec.backbone_dir / "model.safetensors", *(dense.weights for dense in spec.dense)]:
        digest.update(_tail_digest(Path(path)))
    return digest.hexdigest()[:24]


def _tail_digest(path: Path) -> bytes:
    if not path.is_file():
        return b"-"
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - _TAIL_BYTES))
        return hashlib.sha256(str(size).encode() + handle.read()).digest()


def check_model(schema: StoreSchema, model: ColBERT, where: str) -> None:
    if model.dim != schema.model_dim or model_identity(model) != schema.model_identity:
        raise ModelMismatchError(
            f"{where} was indexed with model '{schema.model}' ({schema.model_dim} dims); the model given "
            f"('{model.name}', {model.dim} dims) encodes differently, so its queries would score meaninglessly. "
            f"Open it with model='{schema.model}' (or no model), or index into a new store."
        )


def check_vector_size(vector_size: int | None, model_dim: int) -> int:
    """The stored width: by default the model's, zero-padded up to a multiple of 32.

    Qdrant's MaxSim kernel runs 32-wide SIMD blocks and finishes a remainder in scalar code;
    48-dimensional float16 rows padded to 64 score about 3x faster with identical results
    (benchmarks/store_search_and_indexing.py), for a third more storage.
    """
    if vector_size is None:
        return -(-model_dim // _SIMD_WIDTH) * _SIMD_WIDTH
    if isinstance(vector_size, bool) or not isinstance(vector_size, int) or vector_size < model_dim:
        raise InvalidInputError(
            f"vector_size must be an integer of at least the model's {model_dim} dimensions "
            f"(extra dimensions are zero padding); got {vector_size!r}."
        )
    return vector_size


def point_id(doc_id: str) -> int | str:
    """The engine's point id for a caller's id.

    Qdrant accepts only unsigned integers and UUIDs. Those pass through unchanged, so points made by
    other tools (langchain-qdrant, LlamaIndex) keep their ids; any other string maps to a UUIDv5.
    """
    if doc_id.isdigit() and doc_id.isascii() and str(int(doc_id)) == doc_id and int(doc_id) < 2**64:
        return int(doc_id)
    try:
        parsed = uuid.UUID(doc_id)
    except ValueError:
        return str(uuid.uuid5(_ID_NAMESPACE, doc_id))
    return str(parsed) if str(parsed) == doc_id.lower() else str(uuid.uuid5(_ID_NAMESPACE, doc_id))


def content_id(text: str) -> str:
    """The id of a document added without one: the same text always gets the same id."""
    return str(uuid.uuid5(_ID_NAMESPACE, "text:" + text))
