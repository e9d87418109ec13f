"""ONNX Runtime backend: the backbone and projection exported once, cached, and run by ONNX Runtime.

The graph maps ``input_ids`` and ``attention_mask`` to the projected, not yet normalised token
vectors; :class:`OnnxBackend` masks and normalises them in numpy, while tokenization, length-sorted
batching and pooling stay in :mod:`edgecolbert.encoding.encoder`, shared with the torch backend.
Exports (and their int8 quantizations) live in a cache folder keyed by what the vectors depend on,
never inside the user's model folder, and are written under a temporary name and renamed, so an
interrupted export leaves nothing behind that a later load could mistake for a finished one.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import queue
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from edgecolbert._lazy import lazy_exports
from edgecolbert.encoding.backends import BACKENDS, QUANTIZATIONS
from edgecolbert.encoding.checkpoint import CheckpointSpec, weight_stamps
from edgecolbert.encoding.tokenization import TokenizedBatch
from edgecolbert.errors import InvalidInputError, OnnxExportError, require

if TYPE_CHECKING:
    from torch import nn


logger = logging.getLogger(__name__)

# The torch side of an export lives in its own module: a load that finds the export cached runs
# without torch, which takes seconds to import.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        name: "edgecolbert.encoding.backends.onnx_export"
        for name in ("ProjectedBackbone", "export_module", "export_onnx")
    },
)

Quantize = Literal["int8"]

CACHE_ENV_VAR = "EDGECOLBERT_CACHE"
# Raised whenever the exported graph would change for the same weights, so old exports are not reused.
_EXPORT_RECIPE = "onnx-v4-opset17"
# Up to this many tokens, one text runs on the latency session (queries are 32 to 64 tokens long).
LATENCY_MAX_TOKENS = 128
# At most this many batch sessions by default: each holds its own copy of the weights (the 17m
# shape's int8 file is 60 MB, mostly the embedding table), and only 2 cores were measured.
MAX_DEFAULT_WORKERS = 4
_FP32_NAME = "model.onnx"
_INT8_NAME = "model.int8.onnx"
# Older CPU kernels accept the one bias per query row that all heads share but compute wrong
# results with it (1.20 and 1.21 were checked: vectors off by the full scale).
MIN_ONNXRUNTIME = (1, 22)


def check_backend(backend: str | None, quantize: str | None) -> None:
    """Reject unknown values before anything is loaded; None is the default (torch, or onnx for an export folder)."""
    if backend is not None and backend not in BACKENDS:
        raise InvalidInputError(f"backend {backend!r} is not supported; use one of {', '.join(BACKENDS)}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InvalidInputError(
            f"quantize {quantize!r} is not supported; use None or one of {', '.join(QUANTIZATIONS)}."
        )
    if quantize is not None and backend == "torch":
        raise InvalidInputError(f"quantize={quantize!r} needs backend='onnx' (the torch backend runs float weights).")


def require_onnxruntime() -> Any:
    return require("onnxruntime", "onnx", "backend='onnx'", instead="use backend='torch'")


def kernels_available() -> bool:
    """Whether the installed ONNX Runtime runs the fused ModernBERT graph correctly (see onnx_modernbert)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    release = []
    for part in onnxruntime.__version__.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        release.append(int(digits) if digits else 0)
    return tuple(release) >= MIN_ONNXRUNTIME


def default_threads() -> int:
    """The intra-op thread count torch would use, worked out without importing torch where it is not loaded.

    torch's count honours ``torch.set_num_threads``; its default is ``$MKL_NUM_THREADS``, else
    ``$OMP_NUM_THREADS``, else the machine's physical cores.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    for variable in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return physical_cores()


def physical_cores() -> int:
    """Cores, not hardware threads, of the whole machine (as cpuinfo, which torch uses, counts them)."""
    siblings = set()
    for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*"):
        try:
            siblings.add((cpu / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            continue
    return len(siblings) or os.cpu_count() or 1


def default_cache_root() -> Path:
    """``$EDGECOLBERT_CACHE``, else ``$XDG_CACHE_HOME/edgecolbert``, else ``~/.cache/edgecolbert``."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "edgecolbert"


def export_key(spec: CheckpointSpec) -> str:
    """Identifies an export: the checkpoint's weight files (path, size, mtime) and the export recipe.

    The token budgets are left out on purpose: the graph has dynamic batch and sequence axes.
    """
    stamps = weight_stamps(spec)
    # An older ONNX Runtime gets the plain trace (see onnx_modernbert), so it must not share files.
    recipe = _EXPORT_RECIPE if kernels_available() else f"{_EXPORT_RECIPE}-plain"
    parts = [recipe, str(spec.path), spec.layout, *stamps]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_backend(
    spec: CheckpointSpec,
    quantize: str | None,
    load_torch: Callable[[], tuple[nn.Module, nn.Module]],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> OnnxBackend:
    """A session on the cached ONNX file for ``spec`` (int8 when asked), exporting only what the cache lacks.

    ``load_torch`` returns the backbone and projection; it is called only when an export is needed.
    A cached file ONNX Runtime cannot open (damaged on disk) is exported again once.
    """
    require_onnxruntime()
    folder = export_folder(spec, cache_dir)
    path = _cached_file(folder, spec, quantize, load_torch, refresh=False)
    try:
        return OnnxBackend(path, quantize=quantize)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for unreadable graphs
        logger.warning("Discarding the unreadable ONNX file %s (%s); exporting it again.", path, exc)
    return OnnxBackend(_cached_file(folder, spec, quantize, load_torch, refresh=True), quantize=quantize)


def export_folder(spec: CheckpointSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the export of ``spec`` (and what else its loads keep) lives under ``cache_dir``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "onnx"
    return root / export_key(spec)


def _cached_file(
    folder: Path,
    spec: CheckpointSpec,
    quantize: str | None,
    load_torch: Callable[[], tuple[nn.Module, nn.Module]],
    *,
    refresh: bool,
) -> Path:
    fp32 = folder / _FP32_NAME
    int8 = folder / _INT8_NAME
    if refresh:
        fp32.unlink(missing_ok=True)
        int8.unlink(missing_ok=True)
    if not fp32.is_file():
        # Read through this module, where the names load on first use (and tests can replace them).
        this = sys.modules[__name__]
        backbone, projection = load_torch()
        logger.info("Exporting %s to ONNX in %s (once; later loads reuse it)", spec.path, folder)
        atomic_write(fp32, lambda target: this.export_onnx(this.export_module(backbone, projection), target))
    if quantize is None:
        return fp32
    if not int8.is_file():
        logger.info("Quantizing %s to int8 in %s", fp32, folder)
        atomic_write(int8, lambda target: quantize_int8(fp32, target))
    return int8


def atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    temp = Path(temp_name)
    try:
        write(temp)
        # A concurrent writer of the same key produces the same bytes; the last rename wins harmlessly.
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the matrix products, per output channel, but for the float ones below.

    Only MatMul weights are quantized, one scale per output channel: quantizing the embedding
    tables (Gather) as well measured no faster here, and per-tensor scales no faster or closer.
    Each product's input is quantized with one scale for the whole batch, which the few huge values
    that transformer feed-forward activations carry stretch for every other value; the products
    that read those activations (:func:`feed_forward_outputs`) stay float. On SciFact with real
    all-MiniLM-L6-v2 weights that took the mean MaxSim score error from 1.6% to 1.2% and kept 94.7%
    of the fp32 top 10 instead of 93.5%; those products are a sixth of the 17m shape's multiply-adds.
    The projection to the token vectors (:func:`projection_products`) stays float too: its error
    lands on the stored vectors unmixed by any later layer. With it, SciFact's NDCG@10 (BM25's top
    100 reranked, 300 queries) lost 0.0040 against fp32 instead of 0.0065, for under 1% of
    the multiply-adds.
    """
    onnx = require("onnx", "onnx", "quantize='int8'", instead="use quantize=None")
    quantization = require("onnxruntime.quantization", "onnx", "quantize='int8'", instead="use quantize=None")
    try:
        model = onnx.load(str(source))
        keep_float = feed_forward_outputs(model.graph) + projection_products(model.graph)
        with _quantizer_logs_quiet():
            # The graph loaded above, so the file is read once.
            quantization.quantize_dynamic(
                model,
                str(target),
                weight_type=quantization.QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=keep_float,
            )
    except Exception as exc:  # the quantizer raises many types for graphs it cannot handle
        raise OnnxExportError(f"Quantizing {source} to int8 failed: {exc}. Use quantize=None.") from exc


def projection_products(graph: Any) -> list[str]:
    """Names of the products of the projection head, which every export wraps as its ``projection`` module."""
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.name.startswith("/projection/")]


def feed_forward_outputs(graph: Any) -> list[str]:
    """Names of the weight products whose input a Mul makes: GELU's last step, or GELU times the GLU gate.

    In the exported encoders that is exactly each layer's feed-forward output product.
    """
    producers = {output: node for node in graph.node for output in node.output}
    weights = {initializer.name for initializer in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and node.input[1] in weights
        and getattr(producers.get(node.input[0]), "op_type", None) == "Mul"
    ]


@contextmanager
def _quantizer_logs_quiet() -> Iterator[None]:
    """Drop the quantizer's per-tensor notes, which it logs on the root logger."""

    def from_quantizer(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or record.levelno >= logging.ERROR

    root = logging.getLogger()
    root.addFilter(from_quantizer)
    try:
        yield
    finally:
        root.removeFilter(from_quantizer)


def make_session(path: Path, *, threads: int, spinning: bool = False) -> Any:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, sequential execution.

    Worker threads block instead of spinning between runs (``spinning=False``). A spinning worker
    keeps a core busy while the encoder tokenizes, pads and normalises between batches, and on a
    CPU shared with other work it takes turns from them: on 2 shared cores (17m shape, about half
    the CPU taken by other processes) blocking gave 1.3x the documents/s and half the single-query
    latency of spinning, fp32 and int8 alike (benchmarks/speed_suite.py --spin-ab).

    Where workers do spin (``spinning=True``), they stop when a run returns: a worker still
    spinning after a query takes a core from the MaxSim that follows it. On 2 cores (17m shape,
    int8, 100 stored SciFact candidates) the warm rerank took 1.6-1.8x one query encoding with
    the stop against 2.2-2.5x without it, the query itself no slower.
    """
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # EXTENDED measured the same as ALL for these graphs; ALL also covers layout rewrites that cost nothing here.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OnnxBackend:
    """Runs the exported graph (``quantize="int8"``: its int8 quantization) with ONNX Runtime on the CPU.

    One short text at a time (a query) runs on a second session whose workers spin: between the
    graph's many small operators a blocked worker takes longer to wake than the operator takes to
    run. On 2 cores (17m shape, int8, one SciFact query at a time) a query's graph took a median
    1.2-1.5 ms spinning against 2.3-2.5 ms blocking, and one thread took 1.9-2.4 ms either way;
    under heavy load from other processes spinning was slower, so ``latency_spinning=False`` turns
    it off. Batches run on blocking sessions (see :func:`make_session`).

    Several batches (:meth:`forward_batches`) run at once, one per worker, each worker on a
    session of its own (``workers``, default one per thread up to :data:`MAX_DEFAULT_WORKERS`,
    the threads shared out among them). One batch's matrices are small enough that intra-op
    threads spend much of their time waiting for each other, and ONNX Runtime releases the GIL
    while it runs: on 2 shared cores (17m shape, int8, 300 SciFact documents, batches of 16) two
    one-thread sessions encoded 1.10-1.22x the documents/s of one two-thread session end to end
    (speed_suite.py, three passes), and 1.4x on ready-tokenized batches of 8 or 16.
    A lone batch runs on one session with every thread.

    The query session is made at once (so an unreadable file fails the load); the others when the
    first batch needs them. Each holds its own copy of the weights (about 0.6 s and 100 MiB for
    MiniLM on 2 busy cores), which a process that only answers queries (a search) never needs.
    """

    name = "onnx"

    def __init__(
        self,
        path: Path,
        *,
        quantize: str | None = None,
        threads: int | None = None,
        spinning: bool = False,
        latency_spinning: bool = True,
        workers: int | None = None,
    ) -> None:
        self.path = path
        self.quantize = quantize
        self.threads = threads if threads is not None else default_threads()
        self.workers = workers if workers is not None else min(self.threads, MAX_DEFAULT_WORKERS)
        if self.workers < 1:
            raise InvalidInputError(f"workers must be a positive integer, got {self.workers!r}.")
        self._spinning = spinning
        self._latency_spinning = spinning or latency_spinning
        self._sessions: dict[bool, Any] = {}  # by whether its workers spin
        self._sessions_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._idle_sessions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._session(self._latency_spinning)

    @property
    def session(self) -> Any:
        """The session batches run on."""
        return self._session(self._spinning)

    @session.setter
    def session(self, session: Any) -> None:
        self._sessions[self._spinning] = session

    @property
    def latency_session(self) -> Any:
        """The session one short text runs on (the batch session itself where both would be alike)."""
        return self._session(self._latency_spinning)

    @latency_session.setter
    def latency_session(self, session: Any) -> None:
        self._sessions[self._latency_spinning] = session

    def _session(self, spinning: bool) -> Any:
        session = self._sessions.get(spinning)
        if session is None:
            with self._sessions_lock:
                session = self._sessions.get(spinning)
                if session is None:
                    session = make_session(self.path, threads=self.threads, spinning=spinning)
                    self._sessions[spinning] = session
        return session

    @property
    def fingerprint_parts(self) -> tuple[str, ...]:
        return (f"onnx:{self.quantize or 'fp32'}",)

    def forward(self, batch: TokenizedBatch) -> np.ndarray:
        # In numpy: the handful of torch calls this would take were a tenth of a query's latency
        # on the ONNX path (2 cores).
        return _normalised(self.project(batch.input_ids, batch.attention_mask)[batch.keep_mask])

    def project(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """The graph's output: projected, not yet normalised vectors of every position, ``[batch, length, dim]``."""
        short_single = input_ids.shape[0] == 1 and input_ids.shape[1] <= LATENCY_MAX_TOKENS
        session = self.latency_session if short_single else self.session
        return _run(session, input_ids, attention_mask)

    def forward_batches(self, batches: Iterable[TokenizedBatch]) -> Iterator[np.ndarray]:
        """What :meth:`forward` gives for each batch, in order, with up to ``workers`` batches running at once.

        ``batches`` is read a few ahead of the results, never all at once, so a long stream of
        padded batches is not held in memory.
        """
        batches = iter(batches)
        head = list(itertools.islice(batches, 2))
        if len(head) < 2 or self.workers == 1:
            # A lone batch keeps every thread on itself.
            yield from map(self.forward, itertools.chain(head, batches))
            return
        pool = self._worker_pool()
        pending: deque[Future[np.ndarray]] = deque()
        for batch in itertools.chain(head, batches):
            pending.append(pool.submit(self._forward_on_worker, batch))
            if len(pending) > 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _worker_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._sessions_lock:
                if self._pool is None:
                    # Made here, in the caller's thread, so an unusable file fails the call that needs it.
                    threads = max(1, self.threads // self.workers)
                    sessions = [make_session(self.path, threads=threads) for _ in range(self.workers)]
                    for session in sessions:
                        self._idle_sessions.put(session)
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="edgecolbert-onnx")
        return self._pool

    def _forward_on_worker(self, batch: TokenizedBatch) -> np.ndarray:
        # As many sessions as pool threads: one is always idle when a thread asks.
        session = self._idle_sessions.get()
        try:
            vectors = _run(session, batch.input_ids, batch.attention_mask)
        finally:
            self._idle_sessions.put(session)
        return _normalised(vectors[batch.keep_mask])

    def describe(self) -> str:
        return f"backend='onnx', quantize={self.quantize!r}"

    def __repr__(self) -> str:
        return f"OnnxBackend(path={str(self.path)!r}, quantize={self.quantize!r}, threads={self.threads})"


def _run(session: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    (vectors,) = session.run(["vectors"], {"input_ids": input_ids, "attention_mask": attention_mask})
    return vectors


def _normalised(kept: np.ndarray) -> np.ndarray:
    return kept / np.maximum(np.linalg.norm(kept, axis=-1, keepdims=True), 1e-12)
