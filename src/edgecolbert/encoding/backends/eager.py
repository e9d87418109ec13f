"""The default backend: the torch backbone and projection head, run eager on the model's device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgecolbert.encoding.tokenization import TokenizedBatch


class TorchBackend:
    """The backbone and projection as torch modules; normalisation and masking run on the device too."""

    name = "torch"
    quantize: str | None = None
    # Nothing beyond float rounding separates it from the compiled variant, which shares its fingerprint.
    fingerprint_parts: tuple[str, ...] = ()

    def __init__(self, backbone: nn.Module, projection: nn.Module, *, device: torch.device, dtype: torch.dtype) -> None:
        self.backbone = backbone
        self.projection = projection
        self.device = device
        self.dtype = dtype

    def forward(self, batch: TokenizedBatch) -> np.ndarray:
        keep = torch.from_numpy(batch.keep_mask).to(self.device)
        input_ids = torch.from_numpy(batch.input_ids).to(self.device)
        attention_mask = torch.from_numpy(batch.attention_mask).to(self.device)
        with torch.inference_mode():
            hidden = self.run_backbone(input_ids, attention_mask).last_hidden_state
            vectors = self.projection(hidden.to(self.dtype))
            vectors = F.normalize(vectors.float(), p=2, dim=-1, eps=1e-12)
            return vectors[keep].cpu().numpy()

    def run_backbone(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """The backbone's output for one batch (a transformers model output with ``last_hidden_state``)."""
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask)

    def describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backbone={type(self.backbone).__name__}, device={str(self.device)!r})"
