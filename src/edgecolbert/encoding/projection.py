"""The ColBERT projection head: the Dense layers between the backbone and the token vectors."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from edgecolbert.encoding.checkpoint import DenseSpec, tensor_shapes
from edgecolbert.errors import CorruptCheckpointError, UnsupportedCheckpointError

# Activations are looked up by name instead of imported from the string a checkpoint carries,
# so a checkpoint can never make us import arbitrary code.
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "Identity": nn.Identity,
    "Tanh": nn.Tanh,
    "ReLU": nn.ReLU,
    "GELU": nn.GELU,
    "Sigmoid": nn.Sigmoid,
    "SiLU": nn.SiLU,
}


class DenseLayer(nn.Module):
    """``act(linear(x))``, plus the input (or its projection) when the layer is residual."""

    def __init__(self, spec: DenseSpec) -> None:
        super().__init__()
        self.linear = nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.activation = _activation(spec)
        self.use_residual = spec.use_residual
        self.residual: nn.Linear | None = None
        if spec.use_residual and spec.in_features != spec.out_features:
            self.residual = nn.Linear(spec.in_features, spec.out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.linear(x))
        if self.use_residual:
            out = out + (x if self.residual is None else self.residual(x))
        return out


def _activation(spec: DenseSpec) -> nn.Module:
    short = spec.activation.rsplit(".", 1)[-1]
    if short not in _ACTIVATIONS:
        raise UnsupportedCheckpointError(
            f"The projection layer beside {spec.weights} uses activation {spec.activation!r}, which is not "
            f"supported; known: {', '.join(sorted(_ACTIVATIONS))}."
        )
    return _ACTIVATIONS[short]()


def build_projection(specs: Sequence[DenseSpec]) -> nn.Sequential:
    """Build the Dense stack and load its weights, checking every shape against its config.

    The shapes are checked against the files' headers before any layer is allocated, so a config
    that claims 10^9 features is refused instead of allocated.
    """
    for spec in specs:
        _check_shapes(spec)
    for before, after in pairwise(specs):
        if before.out_features != after.in_features:
            raise CorruptCheckpointError(
                f"Projection layers do not chain: {before.weights} outputs {before.out_features} features but "
                f"{after.weights} takes {after.in_features}."
            )
    layers = [DenseLayer(spec) for spec in specs]
    for layer, spec in zip(layers, specs):
        _load_layer(layer, spec)
    return nn.Sequential(*layers)


def _expected_shapes(spec: DenseSpec) -> dict[str, tuple[int, ...]]:
    """The checkpoint keys and shapes ``DenseLayer(spec)`` will read, computed without building it."""
    shapes: dict[str, tuple[int, ...]] = {spec.key_prefix + "weight": (spec.out_features, spec.in_features)}
    if spec.bias:
        shapes[spec.key_prefix + "bias"] = (spec.out_features,)
    if spec.use_residual and spec.in_features != spec.out_features:
        shapes["residual.weight"] = (spec.out_features, spec.in_features)
    return shapes


def _check_shapes(spec: DenseSpec) -> None:
    available = tensor_shapes([spec.weights], "The projection weights")
    for key, shape in _expected_shapes(spec).items():
        if key not in available:
            raise CorruptCheckpointError(f"{spec.weights} has no tensor {key!r} for the projection head.")
        if available[key] != shape:
            raise CorruptCheckpointError(
                f"{spec.weights}: tensor {key!r} has shape {available[key]}, its config "
                f"({spec.weights.parent / 'config.json'}) says {shape}."
            )


def _load_layer(layer: DenseLayer, spec: DenseSpec) -> None:
    from safetensors import safe_open

    wanted = dict(layer.named_parameters())
    try:
        with safe_open(str(spec.weights), framework="pt") as handle:
            available = set(handle.keys())
            for name, param in wanted.items():
                key = _checkpoint_key(name, spec.key_prefix)
                if key not in available:
                    raise CorruptCheckpointError(f"{spec.weights} has no tensor {key!r} for the projection head.")
                tensor = handle.get_tensor(key)
                with torch.no_grad():
                    param.copy_(tensor.to(param.dtype))
    except CorruptCheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own types for truncated or garbled files
        raise CorruptCheckpointError(f"{spec.weights} is not a readable safetensors file: {exc}") from exc


def _checkpoint_key(name: str, linear_prefix: str) -> str:
    # Checkpoints name the main weight "linear.*" (or a prefix of it) and the residual "residual.*".
    if name.startswith("linear."):
        return linear_prefix + name[len("linear.") :]
    return name
