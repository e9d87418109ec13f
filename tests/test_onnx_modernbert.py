"""ModernBERT's export with ONNX Runtime's fused attention: same vectors, and the fused graph is what runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from checkpoints import build_stanford_checkpoint
from edgecolbert.encoding.backends import onnx as onnx_backend
from edgecolbert.encoding.backends import onnx_modernbert

onnx = pytest.importorskip("onnx", reason="the ONNX backend needs onnx and onnxruntime (the 'onnx' extra)")
ort = pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (the 'onnx' extra)")
from transformers import ModernBertConfig, ModernBertModel  # noqa: E402 (after importorskip)

fused_kernels = pytest.mark.skipif(
    not onnx_modernbert.kernels_available(),
    reason=f"the fused kernels need onnxruntime >= {'.'.join(map(str, onnx_modernbert.MIN_ONNXRUNTIME))}",
)

# Three layers: the first and last global, the middle one local (16 tokens either side).
WINDOW = 32
LENGTH = 90


def _backbone() -> nn.Module:
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=120,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        local_attention=WINDOW,
        global_attn_every_n_layers=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        global_rope_theta=10000.0,
        local_rope_theta=500.0,
    )
    model = ModernBertModel(config).eval()
    # Random weights at the default scale leave every layer near the identity; larger ones make
    # attention matter, so a wrong mask or rotation would show.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.15)
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 120, (3, LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 50:] = 0
    attention_mask[2, 7:] = 0
    return input_ids, attention_mask


def _reference(backbone: nn.Module, projection: nn.Module) -> torch.Tensor:
    input_ids, attention_mask = _batch()
    with torch.no_grad():
        return onnx_backend.ProjectedBackbone(backbone, projection)(input_ids, attention_mask)


def _real_tokens(vectors: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.asarray(vectors)[_batch()[1].numpy().astype(bool)]


def _relative(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))


def _export(module: nn.Module, target: Path) -> Path:
    onnx_backend.export_onnx(module, target)
    return target


def _run(path: Path) -> np.ndarray:
    session = onnx_backend.make_session(path, threads=1)
    input_ids, attention_mask = _batch()
    (vectors,) = session.run(["vectors"], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
    return vectors


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_rewritten_forward_equals_the_transformers_one() -> None:
    backbone, projection = _backbone(), nn.Linear(64, 16)
    expected = _reference(backbone, projection)
    input_ids, attention_mask = _batch()
    with torch.no_grad():
        got = onnx_modernbert.FusedModernBert(backbone, projection)(input_ids, attention_mask)
    assert _relative(_real_tokens(got), _real_tokens(expected)) < 1e-5


@fused_kernels
def test_exported_graph_runs_the_fused_kernels_and_matches_torch(tmp_path: Path) -> None:
    backbone, projection = _backbone(), nn.Linear(64, 16)
    expected = _reference(backbone, projection)
    path = _export(onnx_backend.export_module(backbone, projection), tmp_path / "model.onnx")
    ops = _op_types(path)
    assert {"MultiHeadAttention", "RotaryEmbedding"} <= ops
    # No score tensor is built outside the kernel, and no projection output is sliced apart.
    assert not ops & {"Softmax", "Slice", "Split", "IsNaN"}
    assert _relative(_real_tokens(_run(path)), _real_tokens(expected)) < 1e-5


def _cosines(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.sum(got * expected, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))


@pytest.mark.slow
@fused_kernels
def test_int8_quantizes_the_split_projections_as_closely_as_the_plain_trace(tmp_path: Path) -> None:
    backbone, projection = _backbone(), nn.Linear(64, 16)
    expected = _real_tokens(_reference(backbone, projection))
    medians = {}
    for name, module in {
        "fused": onnx_backend.export_module(backbone, projection),
        "plain": onnx_backend.ProjectedBackbone(backbone, projection),
    }.items():
        int8 = tmp_path / f"{name}.int8.onnx"
        onnx_backend.quantize_int8(_export(module, tmp_path / f"{name}.onnx"), int8)
        products = [node for node in onnx.load(str(int8)).graph.node if node.op_type == "MatMulInteger"]
        # Per layer, fused: q, k, v, attention output, GLU input and gate; plain: QKV, attention
        # output, GLU input. The feed-forward output products and the projection stay float.
        assert len(products) == (3 * 6 if name == "fused" else 3 * 3)
        medians[name] = float(np.median(_cosines(_real_tokens(_run(int8)), expected)))
    assert medians["fused"] > 0.95
    assert medians["fused"] >= medians["plain"] - 0.01


def test_padding_changes_no_real_token() -> None:
    backbone, projection = _backbone(), nn.Linear(64, 16)
    fused = onnx_modernbert.FusedModernBert(backbone, projection)
    input_ids, attention_mask = _batch()
    with torch.no_grad():
        padded = fused(input_ids[2:3], attention_mask[2:3])[0, :7]
        alone = fused(input_ids[2:3, :7], attention_mask[2:3, :7])[0]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-6)


def test_other_backbones_keep_the_plain_trace(tmp_path: Path) -> None:
    from edgecolbert import ColBERT

    model = ColBERT.from_pretrained(build_stanford_checkpoint(tmp_path / "stanford"), device="cpu")
    assert not onnx_modernbert.supports(model.engine.backbone)
    module = onnx_backend.export_module(model.engine.backbone, model.engine.projection)
    assert isinstance(module, onnx_backend.ProjectedBackbone)


@fused_kernels
def test_rotary_scaling_it_cannot_reproduce_keeps_the_plain_trace() -> None:
    backbone = _backbone()
    assert onnx_modernbert.supports(backbone)
    backbone.rotary_emb.rope_type = {kind: "dynamic" for kind in backbone.rotary_emb.rope_type}
    assert not onnx_modernbert.supports(backbone)
    assert isinstance(onnx_backend.export_module(backbone, nn.Linear(64, 16)), onnx_backend.ProjectedBackbone)
    with pytest.raises(ValueError, match="static rotary"):
        onnx_modernbert.FusedModernBert(backbone, nn.Linear(64, 16))


@fused_kernels
def test_feed_forward_outputs_and_the_projection_are_the_products_left_float(tmp_path: Path) -> None:
    backbone, projection = _backbone(), nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16))
    path = _export(onnx_backend.export_module(backbone, projection), tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    kept = onnx_backend.feed_forward_outputs(graph)
    assert kept == [f"/layers.{index}/mlp_out/MatMul" for index in range(3)]
    head = onnx_backend.projection_products(graph)
    assert len(head) == 2 and all(name.startswith("/projection/") for name in head)
    int8 = tmp_path / "model.int8.onnx"
    onnx_backend.quantize_int8(path, int8)
    nodes = onnx.load(str(int8)).graph.node
    float_products = {node.name for node in nodes if node.op_type == "MatMul"}
    assert set(kept) | set(head) <= float_products
    assert sum(node.op_type == "MatMulInteger" for node in nodes) > 0  # the rest is quantized


def test_an_onnxruntime_with_faulty_kernels_gets_the_plain_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = _backbone()
    monkeypatch.setattr(ort, "__version__", "1.21.1")
    assert not onnx_modernbert.kernels_available()
    assert isinstance(onnx_backend.export_module(backbone, nn.Linear(64, 16)), onnx_backend.ProjectedBackbone)
    monkeypatch.setattr(ort, "__version__", "1.22.0")
    assert isinstance(onnx_backend.export_module(backbone, nn.Linear(64, 16)), onnx_modernbert.FusedModernBert)
