"""ColBERT: tokenize → backbone → projection → mask → normalise, batched by length."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecolbert.encoding import prepared
from edgecolbert.encoding.backends.base import Backend, ConcurrentBackend
from edgecolbert.encoding.backends.onnx import (
    OnnxBackend,
    atomic_write,
    check_backend,
    export_folder,
    load_backend,
)
from edgecolbert.encoding.checkpoint import (
    CheckpointSpec,
    check_backbone_config,
    read_checkpoint,
    resolve_checkpoint_dir,
    weight_stamps,
)
from edgecolbert.encoding.defaults import default_model_name
from edgecolbert.encoding.exported import ExportedModel, Origin, is_export, read_export
from edgecolbert.encoding.pooling import check_pool_factor, pool_documents
from edgecolbert.encoding.tokenization import ColbertTokenizer, Kind, TokenAlignment, TokenizedBatch, check_length
from edgecolbert.errors import (
    CorruptCheckpointError,
    InvalidDocumentError,
    InvalidInputError,
    require,
)
from edgecolbert.vectors import MultiVectors

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

# torch (seconds to import) is imported where a torch object is made, so the ONNX backend runs without it.
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
# What the ONNX backend runs; named without torch, as ``str(torch.float32)`` spells it.
_ONNX_DTYPE = "torch.float32"


def resolve_device(device: str | torch.device | None) -> torch.device:
    import torch

    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, _dtype_name(dtype))


def _dtype_name(dtype: str) -> str:
    """The torch attribute a dtype name stands for (``"bf16"`` → ``"bfloat16"``), without importing torch."""
    if dtype not in _DTYPES:
        raise InvalidInputError(f"dtype {dtype!r} is not supported; use one of {', '.join(sorted(_DTYPES))}.")
    return _DTYPES[dtype]


class ColBERT:
    """A late-interaction encoder: one L2-normalised vector per kept token.

    Build it with :meth:`from_pretrained`. Encoding is thread-safe: one instance can serve
    several threads at once. ``engine`` runs the backbone and projection: a
    :class:`~edgecolbert.encoding.backends.eager.TorchBackend` (``engine.backbone`` and
    ``engine.projection`` are its torch modules), its compiled variant, or an
    :class:`~edgecolbert.encoding.backends.onnx.OnnxBackend`; ``backend`` is its name.
    """

    def __init__(
        self,
        spec: CheckpointSpec,
        engine: Backend,
        tokenizer: ColbertTokenizer,
        *,
        name: str,
        device: torch.device | str,
        dtype: torch.dtype | str,
        pool_factor: int = 1,
        origin: Origin | None = None,
        max_positions: int | None = None,
    ) -> None:
        self.spec = spec
        # The checkpoint an export folder was made from (None for a checkpoint loaded itself).
        self.origin = origin
        # The backbone's position limit, which the lengths were checked against (None where its config names none).
        self.max_positions = max_positions
        self.engine = engine
        self.tokenizer = tokenizer
        self.name = name
        # Kept as given: the ONNX backend passes names, made torch objects only when read.
        self._device = device
        self._dtype = dtype
        self.pool_factor = check_pool_factor(pool_factor)
        self.dim = int(spec.dense[-1].out_features)
        self.fingerprint = self._compute_fingerprint()

    @property
    def device(self) -> torch.device:
        torch = require("torch", "torch", "ColBERT.device", instead="read ColBERT.dtype_name, which needs no torch")
        return torch.device(self._device)

    @property
    def dtype(self) -> torch.dtype:
        return _torch_dtype(self._dtype)

    @property
    def dtype_name(self) -> str:
        """The dtype as ``str(model.dtype)`` spells it (``"torch.float32"``), read without importing torch."""
        return str(self._dtype)

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnx"``, as passed to :meth:`from_pretrained`."""
        return self.engine.name

    @property
    def quantize(self) -> str | None:
        return self.engine.quantize

    def _compute_fingerprint(self) -> str:
        # Only what changes the vectors is added, so the torch backend keeps its fingerprint
        # (compiling reorders float arithmetic and nothing else).
        variant = list(self.engine.fingerprint_parts)
        if self.pool_factor > 1:
            variant.append(f"pool:{self.pool_factor}")
        return _fingerprint(self.spec, self.tokenizer, self.dtype_name, variant, self.origin)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        trust_remote_code: bool = False,
        token: str | bool | None = None,
        local_files_only: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        attn_implementation: str | None = None,
        backend: str | None = None,
        quantize: str | None = None,
        pool_factor: int = 1,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
        compile: bool = False,
    ) -> ColBERT:
        """Load a checkpoint from a local folder or a Hugging Face hub id.

        ``query_length`` / ``document_length`` override the checkpoint's token budgets, up to the
        backbone's position limit (7,999 tokens for Ettin), so long documents can be encoded whole.
        ``attn_implementation`` is passed to transformers; its default picks SDPA where the
        architecture supports it (1.7x faster than eager attention on CPU).

        ``backend`` defaults to ``"torch"`` for a checkpoint (needs the ``torch`` extra) and to
        ``"onnx"`` for a folder written by ``edgecolbert export`` (:mod:`edgecolbert.encoding.exported`),
        which runs on ONNX Runtime without torch or transformers and refuses ``backend="torch"``;
        ``quantize="int8"`` picks its int8 graph.

        ``backend="onnx"`` runs the backbone and projection of a checkpoint with ONNX Runtime on the CPU.
        The export happens once and is cached under ``onnx_cache_dir`` (default
        ``~/.cache/edgecolbert/onnx``, or ``$EDGECOLBERT_CACHE/onnx``), keyed by the checkpoint's
        weights; the model folder is never written to. ``quantize="int8"`` adds dynamic int8
        quantization of the weights (cached too). ``pool_factor`` > 1 pools each document's vectors
        to about 1/``pool_factor`` of them (see :mod:`edgecolbert.encoding.pooling`); queries are never pooled.

        ``compile=True`` compiles the torch backbone with TorchInductor (see
        :mod:`edgecolbert.encoding.backends.compiled`): 1.1-1.2x the documents/s on 2 CPU cores in most runs, after
        a first batch that takes tens of seconds to compile. It needs a C++ compiler on the CPU.
        """
        check_backend(backend, quantize)
        pool_factor = check_pool_factor(pool_factor)
        name = os.fspath(name_or_path) if name_or_path is not None else default_model_name()
        if is_export(Path(name).expanduser()):
            exported = read_export(Path(name).expanduser().resolve())
            _check_export_options(exported, backend, device, dtype, compile)
            return cls._from_export(exported, name, quantize, query_length, document_length, pool_factor)
        backend = backend or "torch"
        check_backend(backend, quantize)
        if backend == "torch":
            require("torch", "torch", f"Loading the checkpoint {name}", instead=_EXPORT_HINT)
        torch_device = resolve_device(device) if backend == "torch" else _onnx_device(device)
        _check_compile(compile, backend, torch_device)
        folder = resolve_checkpoint_dir(
            name, revision=revision, token=token, local_files_only=local_files_only, cache_dir=cache_dir
        )
        spec = read_checkpoint(folder)
        torch_dtype = resolve_dtype(dtype) if backend == "torch" else _onnx_dtype(dtype)
        onnx_record = _onnx_record_file(spec, trust_remote_code, onnx_cache_dir) if backend == "onnx" else None
        record = prepared.read_record(onnx_record) if onnx_record is not None else None
        # With a record, transformers (and torch) is imported only if the export has to be made again.
        config: Any = (
            None if record is not None else _load_config(spec.backbone_dir, trust_remote_code=trust_remote_code)
        )

        def load_backbone() -> nn.Module:
            return _load_backbone(
                spec.backbone_dir,
                config if config is not None else _load_config(spec.backbone_dir, trust_remote_code=trust_remote_code),
                dtype=_torch_dtype(torch_dtype),
                trust_remote_code=trust_remote_code,
                attn_implementation=attn_implementation,
            )

        backbone = load_backbone() if backend == "torch" else None
        max_positions = record["max_positions"] if record else getattr(config, "max_position_embeddings", None)
        query_length = check_length("query_length", query_length or spec.query_length, max_positions)
        document_length = check_length("document_length", document_length or spec.document_length, max_positions)
        if record is not None:
            tokenizer = ColbertTokenizer.from_state(
                spec, record["tokenizer"], query_length=query_length, document_length=document_length
            )
        else:
            tokenizer = ColbertTokenizer(spec, query_length=query_length, document_length=document_length)
        hidden = record["hidden_size"] if record else getattr(config, "hidden_size", None)
        if hidden is not None and spec.dense[0].in_features != hidden:
            raise CorruptCheckpointError(
                f"{spec.dense[0].weights} projects {spec.dense[0].in_features} features but the backbone in "
                f"{spec.backbone_dir} produces {hidden}."
            )
        # A record means these weights loaded before; then the head is built only for an export.
        projection = _projection(spec, torch_device, torch_dtype) if record is None else None

        def head() -> nn.Module:
            return projection if projection is not None else _projection(spec, torch_device, torch_dtype)

        engine: Backend
        if backbone is not None:
            from edgecolbert.encoding.backends.compiled import CompiledTorchBackend
            from edgecolbert.encoding.backends.eager import TorchBackend

            backbone = backbone.to(torch_device).eval()
            torch_backend = CompiledTorchBackend if compile else TorchBackend
            engine = torch_backend(
                backbone, head(), device=resolve_device(torch_device), dtype=_torch_dtype(torch_dtype)
            )
        else:
            engine = load_backend(spec, quantize, lambda: (load_backbone().eval(), head()), cache_dir=onnx_cache_dir)
        if onnx_record is not None and record is None:
            _write_record(onnx_record, tokenizer, max_positions=max_positions, hidden_size=hidden)
        logger.info(
            "Loaded %s (%s layout) on %s as %s, %s backend", name, spec.layout, torch_device, torch_dtype, backend
        )
        return cls(
            spec,
            engine,
            tokenizer,
            name=name,
            device=torch_device,
            dtype=torch_dtype,
            pool_factor=pool_factor,
            max_positions=max_positions,
        )

    @classmethod
    def _from_export(
        cls,
        exported: ExportedModel,
        name: str,
        quantize: str | None,
        query_length: int | None,
        document_length: int | None,
        pool_factor: int,
    ) -> ColBERT:
        """An encoder on an export folder's graph: ONNX Runtime and the tokenizers library, nothing else."""
        spec = exported.spec
        query_length = check_length("query_length", query_length or spec.query_length, exported.max_positions)
        document_length = check_length(
            "document_length", document_length or spec.document_length, exported.max_positions
        )
        tokenizer = ColbertTokenizer.from_state(
            spec, exported.tokenizer_state, query_length=query_length, document_length=document_length
        )
        engine = OnnxBackend(exported.graph(quantize), quantize=quantize)
        logger.info("Loaded the export %s (of %s) on ONNX Runtime", exported.folder, exported.origin.path)
        return cls(
            spec,
            engine,
            tokenizer,
            name=name,
            device="cpu",
            dtype=_ONNX_DTYPE,
            pool_factor=pool_factor,
            origin=exported.origin,
            max_positions=exported.max_positions,
        )

    def with_pool_factor(self, pool_factor: int) -> ColBERT:
        """This encoder pooling documents by ``pool_factor`` by default; weights and sessions are shared, not copied.

        A store uses it to encode new documents exactly as its stored ones were pooled.
        """
        factor = check_pool_factor(pool_factor)
        if factor == self.pool_factor:
            return self
        pooled = copy.copy(self)
        pooled.pool_factor = factor
        pooled.fingerprint = pooled._compute_fingerprint()
        return pooled

    @property
    def query_length(self) -> int:
        return self.tokenizer.query_length

    @property
    def document_length(self) -> int:
        return self.tokenizer.document_length

    def encode_queries(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> MultiVectors:
        """Encode queries: marker, [MASK] expansion when the checkpoint uses it, no skiplist."""
        return self._encode(texts, "query", batch_size=batch_size, show_progress_bar=show_progress_bar)

    def encode_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 16,
        show_progress_bar: bool = False,
        on_truncation: Callable[[int], None] | None = None,
        pool_factor: int | None = None,
    ) -> MultiVectors:
        """Encode documents: marker, truncation to ``document_length``, punctuation skiplist.

        Truncation is logged once per call; ``on_truncation`` receives the count instead, for
        callers that encode in many calls and report once (indexing). ``pool_factor`` overrides
        the model's default (1: every kept token; 2: about half as many vectors, ...).
        """
        factor = self.pool_factor if pool_factor is None else check_pool_factor(pool_factor)
        vectors = self._encode(
            texts, "document", batch_size=batch_size, show_progress_bar=show_progress_bar, on_truncation=on_truncation
        )
        if factor == 1:
            return vectors
        return MultiVectors.from_arrays(pool_documents(vectors, factor), dim=self.dim)

    def encode_query(self, text: str) -> np.ndarray:
        """One query's ``[n_tokens, dim]`` vectors.

        The same vectors as ``encode_queries([text])[0]``, without the batching and packing a
        list needs: a search request encodes one query, and on 2 cores that bookkeeping was a
        fifth of its time.
        """
        sequences = self._token_ids(check_texts([text]), "query", None)
        return self.engine.forward(self.tokenizer.pad(sequences, "query"))

    def encode_aligned(self, text: str, kind: Kind) -> tuple[np.ndarray, TokenAlignment]:
        """One text's kept ``[n, dim]`` vectors, never pooled, and the token each row stands for.

        Row ``i`` of the vectors is the token at ``alignment.tokens[i]``, with its character span in
        ``text`` (None for markers, special and [MASK] expansion tokens). The vectors are those of
        ``encode_queries([text])[0]`` / ``encode_documents([text], pool_factor=1)[0]``.
        """
        batch, alignment = self._aligned_batch(text, kind)
        return self.engine.forward(batch), alignment

    def align(self, text: str, kind: Kind) -> TokenAlignment:
        """The token each row of ``text``'s kept vectors stands for, without running the model.

        For a caller that holds the vectors already (``encode_query(text)``): pairing them with this
        gives what :meth:`encode_aligned` returns, at the cost of a tokenization instead of an encoding.
        """
        return self._aligned_batch(text, kind)[1]

    def _aligned_batch(self, text: str, kind: Kind) -> tuple[TokenizedBatch, TokenAlignment]:
        alignment = self.tokenizer.align(check_texts([text])[0], kind)
        batch = self.tokenizer.pad([list(alignment.ids)], kind)
        return batch, alignment.kept(batch.keep_mask[0], self.tokenizer.expansion_token)

    def _encode(
        self,
        texts: Sequence[str],
        kind: Kind,
        *,
        batch_size: int,
        show_progress_bar: bool,
        on_truncation: Callable[[int], None] | None = None,
    ) -> MultiVectors:
        texts = check_texts(texts)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if not texts:
            return MultiVectors.from_arrays([], dim=self.dim)
        sequences = self._token_ids(texts, kind, on_truncation)
        # Similar lengths in a batch waste less compute on padding; the input order is restored below.
        order = np.argsort([-len(ids) for ids in sequences], kind="stable")
        size = _batch_size_for(len(order), batch_size, self._workers())
        groups = [order[start : start + size] for start in range(0, len(order), size)]
        # Padded as the backend asks for them (a few ahead of the results), not all at once.
        padded: deque[TokenizedBatch] = deque()

        def pad_each() -> Iterator[TokenizedBatch]:
            for rows in groups:
                padded.append(self.tokenizer.pad([sequences[i] for i in rows], kind))
                yield padded[-1]

        per_text: list[np.ndarray] = [np.empty((0, self.dim), dtype=np.float32)] * len(texts)
        from tqdm.auto import tqdm  # half a second to import, which a single query never needs

        results = tqdm(
            self._forward_batches(pad_each()),
            total=len(groups),
            desc=f"Encoding {kind}s",
            disable=not show_progress_bar,
            unit="batch",
        )
        for rows, kept in zip(groups, results, strict=True):
            batch = padded.popleft()
            bounds = np.concatenate([[0], np.cumsum(batch.keep_mask.sum(axis=1))])
            for position, row in enumerate(rows):
                per_text[row] = kept[bounds[position] : bounds[position + 1]]
        return MultiVectors.from_arrays(per_text, dim=self.dim)

    def _workers(self) -> int:
        return self.engine.workers if isinstance(self.engine, ConcurrentBackend) else 1

    def _forward_batches(self, batches: Iterator[TokenizedBatch]) -> Iterator[np.ndarray]:
        if isinstance(self.engine, ConcurrentBackend):
            return self.engine.forward_batches(batches)
        return map(self.engine.forward, batches)

    def _token_ids(self, texts: list[str], kind: Kind, on_truncation: Callable[[int], None] | None) -> list[list[int]]:
        """Token ids per text; truncation goes to ``on_truncation`` when given, else to the log."""
        sequences, truncated = self.tokenizer.token_ids(texts, kind)
        if truncated and on_truncation is not None:
            on_truncation(truncated)
        elif truncated:
            limit = self.query_length if kind == "query" else self.document_length
            logger.warning(
                "%d of %d %s exceed %d tokens and were truncated; pass a larger %s_length to keep them whole.",
                truncated,
                len(texts),
                "queries" if kind == "query" else "documents",
                limit,
                kind,
            )
        return sequences

    def __repr__(self) -> str:
        described = self.engine.describe()
        extra = f", {described}" if described else ""
        if self.pool_factor > 1:
            extra += f", pool_factor={self.pool_factor}"
        return (
            f"ColBERT(name={self.name!r}, layout={self.spec.layout!r}, dim={self.dim}, "
            f"device={str(self._device)!r}{extra})"
        )


def _batch_size_for(texts: int, batch_size: int, workers: int) -> int:
    """``batch_size``, made smaller where that is what gives each of ``workers`` a batch of its own."""
    return max(1, min(batch_size, -(-texts // workers)))


def check_texts(texts: Sequence[str]) -> list[str]:
    """A list of strings, or a TypeError naming the first position that is not one."""
    if isinstance(texts, (str, bytes)):
        raise InvalidDocumentError("Expected a list of strings, got a single string: wrap it in a list.")
    try:
        items = list(texts)
    except TypeError as exc:
        raise InvalidDocumentError(f"Expected a list of strings, got {type(texts).__name__}.") from exc
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidDocumentError(f"Text at position {position} is {type(text).__name__}, not str.")
    return items


_EXPORT_HINT = "load a folder made by `edgecolbert export` (it runs on ONNX Runtime alone)"


def _check_export_options(
    exported: ExportedModel,
    backend: str | None,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    compile: object,
) -> None:
    """An export runs its ONNX graph on the CPU; refuse what asks for anything else, naming the way out."""
    if backend == "torch" or compile:
        asked = "backend='torch'" if backend == "torch" else "compile=True"
        raise InvalidInputError(
            f"{exported.folder} is an ONNX export (made by `edgecolbert export`) and runs on ONNX Runtime only, so "
            f"{asked} does not apply: leave it out. To run torch, load the checkpoint it was made from "
            f"({exported.origin.path})."
        )
    _onnx_device(device)
    _onnx_dtype(dtype)


def _onnx_device(device: str | torch.device | None) -> str:
    # Read without torch, which an export folder runs without.
    kind = "cpu" if device is None else device.split(":")[0] if isinstance(device, str) else device.type
    if kind != "cpu":
        raise InvalidInputError(
            f"backend='onnx' runs on the CPU, not {device}; use backend='torch' for GPUs or drop device."
        )
    return "cpu"


def _onnx_dtype(dtype: str | torch.dtype | None) -> str:
    if dtype is None:
        return _ONNX_DTYPE
    resolved = f"torch.{_dtype_name(dtype)}" if isinstance(dtype, str) else str(dtype)
    if resolved != _ONNX_DTYPE:
        raise InvalidInputError(
            f"backend='onnx' runs float32 graphs (or int8 with quantize='int8'), not {resolved}; drop dtype."
        )
    return _ONNX_DTYPE


def _check_compile(compile: object, backend: str, device: torch.device | str) -> None:
    # Imports torch, which the ONNX backend does without unless compile is asked for (and refused).
    if backend == "onnx" and compile is False:
        return
    from edgecolbert.encoding.backends.compiled import check_compile

    check_compile(compile, backend, device)


def _onnx_record_file(spec: CheckpointSpec, trust_remote_code: bool, cache_dir: str | os.PathLike[str] | None) -> Path:
    return prepared.record_path(export_folder(spec, cache_dir), spec, trust_remote_code=trust_remote_code)


def _write_record(
    path: Path, tokenizer: ColbertTokenizer, *, max_positions: int | None, hidden_size: int | None
) -> None:
    text = prepared.make_record(tokenizer.state(), max_positions=max_positions, hidden_size=hidden_size)
    try:
        atomic_write(path, lambda target: target.write_text(text, encoding="utf-8"))
    except OSError as exc:
        # Only speed is lost: the next load asks transformers again.
        logger.info("Could not record this load in %s (%s); later loads will import transformers again.", path, exc)


def _projection(spec: CheckpointSpec, device: torch.device | str, dtype: torch.dtype | str) -> nn.Module:
    from edgecolbert.encoding.projection import build_projection

    return build_projection(spec.dense).to(device=device, dtype=_torch_dtype(dtype)).eval()


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``dtype`` as a torch dtype; a name is spelled as ``str`` spells the dtype (``"torch.float32"``)."""
    torch = require("torch", "torch", "ColBERT.dtype", instead="read ColBERT.dtype_name, which needs no torch")
    return getattr(torch, dtype.removeprefix("torch.")) if isinstance(dtype, str) else dtype


def _load_config(folder: Path, *, trust_remote_code: bool) -> Any:
    require("transformers", "torch", f"Loading the checkpoint {folder}", instead=_EXPORT_HINT)
    from transformers import AutoConfig

    check_backbone_config(folder)
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises ValueError, OSError, KeyError... for bad configs
        raise CorruptCheckpointError(f"{folder / 'config.json'} is not a usable transformers config: {exc}") from exc


def _load_backbone(
    folder: Path, config: Any, *, dtype: torch.dtype, trust_remote_code: bool, attn_implementation: str | None
) -> nn.Module:
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        with _transformers_errors_only(), _no_weight_loading_bar():
            model, info = AutoModel.from_pretrained(str(folder), config=config, output_loading_info=True, **kwargs)
    except Exception as exc:  # truncated or mismatched weights surface as many exception types
        raise CorruptCheckpointError(f"The backbone weights in {folder} could not be loaded: {exc}") from exc
    # transformers fills missing tensors with random values and only logs it; vectors from such a
    # model would be silently wrong. The pooler is never used for token vectors.
    missing = sorted(key for key in info["missing_keys"] if not key.startswith("pooler."))
    if missing:
        raise CorruptCheckpointError(
            f"The backbone weights in {folder} lack {len(missing)} tensors (first: {', '.join(missing[:3])}); "
            "the checkpoint is incomplete."
        )
    if info["unexpected_keys"]:
        logger.debug("Ignored tensors in %s: %s", folder, sorted(info["unexpected_keys"]))
    return model


@contextmanager
def _transformers_errors_only() -> Iterator[None]:
    """Silence transformers' load report: its findings are checked here and raised as errors."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


_BAR_LOCK = threading.Lock()
_bar_holders = 0
_bar_settings = (True, False)  # (transformers bar enabled, hub bars disabled) as the caller had them


@contextmanager
def _no_weight_loading_bar() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while we load, then give the caller's setting back.

    The switch is process-wide, so concurrent loads count themselves in and the last one out restores it.
    """
    global _bar_holders, _bar_settings
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    with _BAR_LOCK:
        if _bar_holders == 0:
            # Turning transformers' bars back on also turns on the hub's, so that is recorded too.
            _bar_settings = (hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled())
            hf_logging.disable_progress_bar()
        _bar_holders += 1
    try:
        yield
    finally:
        with _BAR_LOCK:
            _bar_holders -= 1
            if _bar_holders == 0:
                transformers_bar, hub_bars_disabled = _bar_settings
                if transformers_bar:
                    hf_logging.enable_progress_bar()
                if hub_bars_disabled != hub_utils.are_progress_bars_disabled():
                    (hub_utils.disable_progress_bars if hub_bars_disabled else hub_utils.enable_progress_bars)()


def _fingerprint(
    spec: CheckpointSpec,
    tokenizer: ColbertTokenizer,
    dtype: str,
    variant: Sequence[str] = (),
    origin: Origin | None = None,
) -> str:
    """Identifies what a document's vectors depend on, for caches keyed by model.

    An export is named by the checkpoint it came from (``origin``), so it shares that checkpoint's caches.
    """
    path, layout, stamps = (
        (str(spec.path), spec.layout, weight_stamps(spec))
        if origin is None
        else (origin.path, origin.layout, origin.stamps)
    )
    parts = [path, layout, str(tokenizer.document_length), dtype, *stamps, *variant]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
