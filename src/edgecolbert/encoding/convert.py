"""Wrap a sentence-transformers (single-vector) model as a late-interaction checkpoint.

The result keeps the backbone's token outputs as they are (an identity projection), so any
local embedding model becomes a working MaxSim baseline without training: reranking BM25's
top 100 on SciFact with all-MiniLM-L6-v2 wrapped this way lifts NDCG@10 from about 0.66 to 0.69.
The checkpoint is written in PyLate layout, so PyLate and sentence-transformers load it too.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import torch
from safetensors.torch import save_file

from edgecolbert.encoding.checkpoint import check_output_folder, load_json
from edgecolbert.encoding.tokenization import check_length
from edgecolbert.errors import (
    CorruptCheckpointError,
    MissingCheckpointFileError,
    UnsupportedCheckpointError,
)

_BACKBONE_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentence_bert_config.json",
)
# Architectures that number positions from pad_token_id + 1, so that many embeddings are never used.
_OFFSET_POSITION_MODELS = frozenset({"roberta", "xlm-roberta", "camembert", "longformer", "mpnet"})


def from_sentence_transformer(
    source: str | Path,
    target: str | Path,
    *,
    query_length: int = 64,
    document_length: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a late-interaction checkpoint at ``target`` built on the Transformer of ``source``.

    ``document_length`` defaults to the most tokens the backbone can take (see
    :func:`backbone_length_limit`); a length above that limit is refused.
    """
    source, target = Path(source), Path(target)
    backbone = _transformer_folder(source)
    limit = backbone_length_limit(backbone)
    query_length = check_length("query_length", query_length, limit)
    document_length = check_length("document_length", document_length or limit, limit)
    check_output_folder(target, overwrite)
    target.mkdir(parents=True, exist_ok=True)
    for name in _BACKBONE_FILES:
        if (backbone / name).is_file():
            shutil.copy2(backbone / name, target / name)
    hidden = int(load_json(backbone / "config.json")["hidden_size"])
    _write_identity_dense(target / "1_Dense", hidden)
    _write_json(
        target / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ],
    )
    _write_json(
        target / "config_sentence_transformers.json",
        {
            "model_type": "ColBERT",
            "query_prefix": "",
            "document_prefix": "",
            "query_length": query_length,
            "document_length": document_length,
            "do_query_expansion": False,
            "attend_to_expansion_tokens": False,
            "skiplist_words": list(string.punctuation),
        },
    )
    return target


def backbone_length_limit(backbone: str | Path) -> int:
    """The most tokens, special tokens included, that the backbone in ``backbone`` can encode.

    That is its position embeddings (less the offset RoBERTa-style models skip), capped by the
    tokenizer's ``model_max_length`` where it states one. The sentence-transformers
    ``max_seq_length`` (256 for all-MiniLM-L6-v2, whose BERT takes 512) is only the length the
    sentence model was tuned at, so it does not limit token vectors. The converted checkpoint has
    no query/document markers, so [CLS] and [SEP] are the only positions not given to text.
    """
    backbone = Path(backbone)
    config = load_json(backbone / "config.json")
    positions = config.get("max_position_embeddings")
    if isinstance(positions, bool) or not isinstance(positions, int) or positions < 1:
        raise CorruptCheckpointError(f"{backbone / 'config.json'} lacks a valid max_position_embeddings entry.")
    if config.get("model_type") in _OFFSET_POSITION_MODELS:
        pad = config.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) else 1) + 1
    tokenizer_config = backbone / "tokenizer_config.json"
    stated = load_json(tokenizer_config).get("model_max_length") if tokenizer_config.is_file() else None
    # Tokenizers that state no limit save a huge sentinel (int(1e30)); only a real one caps.
    if isinstance(stated, int) and not isinstance(stated, bool) and 0 < stated < positions:
        return stated
    return positions


def _transformer_folder(source: Path) -> Path:
    modules_path = source / "modules.json"
    if not modules_path.is_file():
        raise MissingCheckpointFileError(f"{source} has no modules.json: it is not a sentence-transformers model.")
    for entry in load_json(modules_path):
        if str(entry.get("type", "")).endswith("Transformer"):
            folder = source / str(entry.get("path", ""))
            if not (folder / "model.safetensors").is_file():
                raise MissingCheckpointFileError(f"{folder} has no model.safetensors (pickle weights are not used).")
            return folder
    raise UnsupportedCheckpointError(f"{modules_path} lists no Transformer module.")


def _write_identity_dense(folder: Path, hidden: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"linear.weight": torch.eye(hidden, dtype=torch.float32)}, str(folder / "model.safetensors"))
    _write_json(
        folder / "config.json",
        {
            "in_features": hidden,
            "out_features": hidden,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        },
    )


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
