"""The torch side of the ONNX backend: the module that gets traced and the export call.

Kept apart from :mod:`edgecolbert.encoding.backends.onnx` so that a load finding its export cached
never imports torch; this module is imported only when an export is made.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edgecolbert.encoding.backends import onnx_modernbert
from edgecolbert.errors import OnnxExportError

_OPSET = 17


class ProjectedBackbone(nn.Module):
    """Backbone then projection head: the part of the encoder that the ONNX graph holds."""

    def __init__(self, backbone: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.projection(hidden)


def export_module(backbone: nn.Module, projection: nn.Module) -> nn.Module:
    """What gets exported: ModernBERT with ONNX Runtime's fused attention where it applies, else the plain trace."""
    if onnx_modernbert.supports(backbone):
        return onnx_modernbert.FusedModernBert(backbone, projection)
    return ProjectedBackbone(backbone, projection)


def export_onnx(module: nn.Module, target: Path) -> None:
    """Export with dynamic batch and sequence axes.

    The example batch has a padded row so the attention-mask path is part of the traced graph.
    """
    module = module.eval()
    input_ids = torch.full((2, 16), 5, dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0
    axes = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which takes about 5x
            # longer here and yields the same graph quality for these encoders.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (input_ids, attention_mask),
                str(target),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["vectors"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "vectors": axes},
                opset_version=_OPSET,
                do_constant_folding=True,
                custom_opsets=onnx_modernbert.CONTRIB_OPSETS
                if isinstance(module, onnx_modernbert.FusedModernBert)
                else None,
            )
    except Exception as exc:  # the exporter raises many types for unsupported operators
        raise OnnxExportError(
            f"Exporting the model to ONNX failed: {exc}. Use backend='torch' for this checkpoint."
        ) from exc
