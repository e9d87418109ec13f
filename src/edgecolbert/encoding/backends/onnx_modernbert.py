"""ModernBERT written with ONNX Runtime's fused attention operators, for the ONNX export only.

Traced as it is, a ModernBERT layer becomes a dozen small operators around attention: slices and
concatenations for the rotary embedding, a score tensor of batch x heads x length x length that
goes through Add, Where (the guard against fully masked rows) and Softmax before the second
product, and slices to split the fused QKV and GLU projections. On 2 cores (17m shape, SciFact
documents) those operators took about half the int8 graph's time. This module rewrites the
forward with ONNX Runtime's ``com.microsoft`` ``RotaryEmbedding`` and ``MultiHeadAttention``
kernels, which do the same arithmetic in one pass each, and with the QKV and GLU projections split
into separate products so no output has to be sliced apart. The torch forward computes the same
function, so the export can be checked against it; vectors of real tokens match the plain trace
within float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers.models.modernbert.modeling_modernbert import ModernBertEncoderLayer, ModernBertModel

# Defined there, so a load that never exports can ask without importing torch.
from edgecolbert.encoding.backends.onnx import MIN_ONNXRUNTIME, kernels_available  # noqa: F401

# ONNX Runtime's contrib operator domain, needed by the exporter for the two fused operators.
CONTRIB_OPSETS = {"com.microsoft": 1}
# Added to the scores of keys a token may not attend to. Finite, unlike -inf, so a row with no
# allowed key (a padding position) averages harmlessly instead of turning into NaN; e^-1e9 is 0.
_MASKED = -1e9


def supports(backbone: nn.Module) -> bool:
    """Whether ``backbone`` should be exported fused: the kernels are sound and it can be rewritten."""
    return kernels_available() and reproducible(backbone)


def reproducible(backbone: nn.Module) -> TypeGuard[ModernBertModel]:
    """Whether ``backbone`` is a ModernBERT this rewrite reproduces (static rotary frequencies)."""
    config = getattr(backbone, "config", None)
    if getattr(config, "model_type", None) != "modernbert":
        return False
    rotary = getattr(backbone, "rotary_emb", None)
    rope_types = getattr(rotary, "rope_type", None)
    attention_types = set(getattr(config, "layer_types", None) or ())
    return (
        isinstance(rope_types, dict)
        and set(rope_types.values()) == {"default"}
        and bool(attention_types)
        and attention_types <= {"full_attention", "sliding_attention"}
    )


def _optional_none(graph: Any) -> Any:
    """An omitted optional input in the exported node (the exporter writes it as an empty name)."""
    placeholder = graph.op("prim::Constant")
    placeholder.setType(torch._C.OptionalType.ofTensor())
    return placeholder


class _RotaryEmbedding(torch.autograd.Function):
    """Rotate-half rotary embedding of ``(batch, length, heads * head_dim)``, positions from 0."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
        batch, length, width = x.shape
        head_dim = width // heads
        per_head = x.reshape(batch, length, heads, head_dim)
        cos_full = torch.cat([cos[:length], cos[:length]], dim=-1)[None, :, None, :]
        sin_full = torch.cat([sin[:length], sin[:length]], dim=-1)[None, :, None, :]
        half = head_dim // 2
        rotated = torch.cat((-per_head[..., half:], per_head[..., :half]), dim=-1)
        return (per_head * cos_full + rotated * sin_full).reshape(batch, length, width)

    @staticmethod
    def symbolic(graph: Any, x: Any, cos: Any, sin: Any, heads: int) -> Any:
        first_position = graph.op("Constant", value_t=torch.tensor([0], dtype=torch.long))
        rotated = graph.op(
            "com.microsoft::RotaryEmbedding", x, first_position, cos, sin, interleaved_i=0, num_heads_i=heads
        )
        # Same shape and type as the input; stated so the exporter's shape inference need not guess.
        rotated.setType(x.type())
        return rotated


class _MultiHeadAttention(torch.autograd.Function):
    """Softmax attention of ``(batch, length, heads * head_dim)`` inputs with an additive score bias."""

    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, heads: int, scale: float
    ) -> torch.Tensor:
        batch, length, width = q.shape
        q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(2, 3) * scale + bias, dim=-1)
        return (weights @ v).transpose(1, 2).reshape(batch, length, width)

    @staticmethod
    def symbolic(graph: Any, q: Any, k: Any, v: Any, bias: Any, heads: int, scale: float) -> Any:
        # Inputs 3 and 4 (projection bias, key padding mask) are omitted: the mask is in ``bias``.
        attended = graph.op(
            "com.microsoft::MultiHeadAttention",
            q,
            k,
            v,
            _optional_none(graph),
            _optional_none(graph),
            bias,
            num_heads_i=heads,
            scale_f=scale,
        )
        attended.setType(q.type())
        return attended


def _split_linear(linear: nn.Linear, parts: int) -> nn.ModuleList:
    """``linear`` as ``parts`` products, one per equal block of its outputs."""
    pieces = nn.ModuleList()
    for weight, bias in zip(
        linear.weight.chunk(parts, dim=0),
        linear.bias.chunk(parts, dim=0) if linear.bias is not None else [None] * parts,
        strict=True,
    ):
        piece = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        piece.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        if bias is not None:
            piece.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        pieces.append(piece)
    return pieces


class _Layer(nn.Module):
    def __init__(self, layer: ModernBertEncoderLayer) -> None:
        super().__init__()
        self.attention_type = layer.attention_type
        self.attn_norm = layer.attn_norm
        self.q, self.k, self.v = _split_linear(layer.attn.Wqkv, 3)
        self.attn_out = layer.attn.Wo
        self.scale = float(layer.attn.head_dim) ** -0.5
        self.mlp_norm = layer.mlp_norm
        self.mlp_in, self.mlp_gate = _split_linear(layer.mlp.Wi, 2)
        self.act = layer.mlp.act
        self.mlp_out = layer.mlp.Wo

    def forward(
        self, hidden: torch.Tensor, bias: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int
    ) -> torch.Tensor:
        x = self.attn_norm(hidden)
        q = _RotaryEmbedding.apply(self.q(x), cos, sin, heads)
        k = _RotaryEmbedding.apply(self.k(x), cos, sin, heads)
        hidden = hidden + self.attn_out(_MultiHeadAttention.apply(q, k, self.v(x), bias, heads, self.scale))
        x = self.mlp_norm(hidden)
        return hidden + self.mlp_out(self.act(self.mlp_in(x)) * self.mlp_gate(x))


class FusedModernBert(nn.Module):
    """A ModernBERT backbone and projection head: token ids and mask in, projected token vectors out."""

    def __init__(self, backbone: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        if not reproducible(backbone):
            raise ValueError("FusedModernBert needs a ModernBERT backbone with static rotary frequencies.")
        config = backbone.config
        self.embeddings = backbone.embeddings
        # The layers of a ModernBertModel, which reproducible() has just established backbone is.
        layers = [_Layer(cast("ModernBertEncoderLayer", layer)) for layer in backbone.layers]
        self.layers = nn.ModuleList(layers)
        self.final_norm = backbone.final_norm
        self.projection = projection
        self.heads = int(config.num_attention_heads)
        self.window = int(config.sliding_window)
        self.attention_types = sorted({layer.attention_type for layer in layers})
        positions = torch.arange(int(config.max_position_embeddings), dtype=torch.float32)
        for layer_type in self.attention_types:
            inv_freq = getattr(backbone.rotary_emb, f"{layer_type}_inv_freq").float()
            scaling = float(getattr(backbone.rotary_emb, f"{layer_type}_attention_scaling"))
            angles = positions[:, None] * inv_freq[None, :]
            self.register_buffer(f"cos_{layer_type}", angles.cos() * scaling, persistent=False)
            self.register_buffer(f"sin_{layer_type}", angles.sin() * scaling, persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids)
        biases = self._score_biases(attention_mask, hidden.dtype)
        for layer in cast("list[_Layer]", self.layers):
            kind = layer.attention_type
            hidden = layer(hidden, biases[kind], getattr(self, f"cos_{kind}"), getattr(self, f"sin_{kind}"), self.heads)
        return self.projection(self.final_norm(hidden))

    def _score_biases(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Per attention type, 0 where a query may attend a key and ``_MASKED`` elsewhere.

        Shaped ``(batch, 1, length, length)``: the kernel takes a bias per query row.
        """
        length = attention_mask.shape[1]
        keys = attention_mask[:, None, None, :].bool().expand(-1, -1, length, -1)
        index = torch.arange(length, device=attention_mask.device)
        near = ((index[:, None] - index[None, :]).abs() <= self.window)[None, None]
        zero = torch.zeros((), dtype=dtype)
        masked = torch.full((), _MASKED, dtype=dtype)
        allowed = {"full_attention": keys, "sliding_attention": keys & near}
        return {kind: torch.where(allowed[kind], zero, masked) for kind in self.attention_types}
