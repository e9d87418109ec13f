"""Opt-in TorchInductor compilation of the torch backbone (``ColBERT.from_pretrained(..., compile=True)``).

On 2 CPU cores the backbone spends about a sixth of its time in small elementwise operators
(rotary embedding, GELU times gate, residual adds, layer norms), each a separate pass over memory.
Inductor fuses them into a few generated loops; document encoding ran 1.1-1.2x faster than eager
on the 17m and 32m shapes, at the same vectors (float rounding aside). The price is compile time
on the first batch: tens of seconds on 2 cores, paid once per process for batches of any size and
length (Inductor also keeps what it built on disk, which shortens the next process's compile). So
it pays for indexing and evaluation, not for a process that encodes a handful of texts.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import threading
from typing import Any

import torch
from torch import nn

from edgecolbert.encoding.backends.eager import TorchBackend
from edgecolbert.errors import InvalidInputError, InvalidTypeError, MissingDependencyError

logger = logging.getLogger(__name__)

# A batch of one is a separate specialisation to the compiler (one more full compile) and is
# latency-bound, where fusing gains little, so it runs eager.
MIN_COMPILED_BATCH = 2
_CPP_COMPILERS = ("g++", "c++", "clang++")


def check_compile(compile: object, backend: str, device: torch.device | str) -> None:
    """Reject ``compile`` where it cannot work, before the checkpoint is loaded."""
    if not isinstance(compile, bool):
        raise InvalidTypeError(f"compile must be True or False, got {compile!r}.")
    if not compile:
        return
    if backend != "torch":
        raise InvalidInputError(
            "compile=True compiles the torch backend; backend='onnx' already runs a fused graph, so drop compile."
        )
    device = torch.device(device)
    if device.type == "cpu" and find_cpp_compiler() is None:
        raise MissingDependencyError(
            "compile=True on the CPU needs a C++ compiler for TorchInductor (g++ or clang++, or one named by $CXX); "
            "install one (e.g. apt install g++) or drop compile."
        )
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise MissingDependencyError("compile=True on CUDA needs triton: pip install triton, or drop compile.")


def find_cpp_compiler() -> str | None:
    """The path of the C++ compiler Inductor would call, or None when there is none."""
    named = os.environ.get("CXX")
    candidates = (named, *_CPP_COMPILERS) if named else _CPP_COMPILERS
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class CompiledTorchBackend(TorchBackend):
    """The torch backend with the backbone compiled for batches of two or more texts, eager otherwise.

    Both share the same weights. If Inductor fails to build the graph (a broken toolchain, say),
    the failure is logged once and every later batch runs eager, so encoding still finishes.
    """

    def __init__(self, backbone: nn.Module, projection: nn.Module, *, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(backbone, projection, device=device, dtype=dtype)
        # Every dimension symbolic from the start: batch size and padded length change from batch to
        # batch, and recompiling for each new shape would cost more than compiling ever saves.
        self._compiled = torch.compile(backbone, dynamic=True)
        self._failed = False
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """False once compilation failed and batches fell back to the eager backbone."""
        return not self._failed

    def run_backbone(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        if self._failed or input_ids.shape[0] < MIN_COMPILED_BATCH:
            return super().run_backbone(input_ids, attention_mask)
        try:
            return self._compiled(input_ids=input_ids, attention_mask=attention_mask)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            with self._lock:
                if not self._failed:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    logger.warning(
                        "TorchInductor could not compile the backbone (%s); encoding continues eager.", reason
                    )
                self._failed = True
            return super().run_backbone(input_ids, attention_mask)

    def describe(self) -> str:
        return "compile=True"
