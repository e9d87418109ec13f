"""The runtime without torch or transformers: an `edgecolbert export` folder reranks, indexes, searches and serves.

These run where torch cannot be imported, on a folder ``prepare_runtime.py`` made with torch and
named by ``$EDGECOLBERT_TEST_RUNTIME_DIR``: in CI, a virtualenv with only ``pip install -e .`` and
pytest (``.ci/run``); in the main suite, ``tests/test_export.py`` runs them in a subprocess that blocks
both imports. Elsewhere they skip. They need no conftest (``--noconftest``): the shared fixtures import torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_corpus import CHECKPOINT, DOCUMENTS, EXPORT, QUERY, RUNTIME_DIR_ENV_VAR, STORE

from edgecolbert import ColBERT, InvalidInputError, MissingDependencyError, ModelMismatchError, Reranker, maxsim
from edgecolbert.cli import main
from edgecolbert.encoding.defaults import MODEL_ENV_VAR
from edgecolbert.store import EdgeStore

pytestmark = pytest.mark.skipif(
    not os.environ.get(RUNTIME_DIR_ENV_VAR),
    reason=f"${RUNTIME_DIR_ENV_VAR} is unset: tests/test_export.py runs these without torch, and .ci/run in a "
    "virtualenv without it",
)
HEAVY = ("torch", "transformers")


@pytest.fixture(scope="module")
def prepared() -> Path:
    return Path(os.environ[RUNTIME_DIR_ENV_VAR])


@pytest.fixture(scope="module")
def export(prepared: Path) -> Path:
    return prepared / EXPORT


@pytest.fixture(autouse=True)
def _nothing_heavy_imported() -> Iterator[None]:
    yield
    assert [name for name in HEAVY if name in sys.modules] == []


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # the blocking finder of the main suite's subprocess
        return False


def test_torch_and_transformers_cannot_be_imported() -> None:
    assert not _importable("torch")
    assert not _importable("transformers")


def test_the_export_runs_on_onnx_runtime(export: Path) -> None:
    model = ColBERT.from_pretrained(export)
    int8 = ColBERT.from_pretrained(export, quantize="int8")
    assert (model.backend, model.quantize, int8.quantize) == ("onnx", None, "int8")
    vectors = model.encode_documents(list(DOCUMENTS.values()))
    assert [len(doc) > 0 for doc in vectors] == [True] * len(DOCUMENTS)
    assert vectors[0].shape[1] == model.dim
    assert model.fingerprint != int8.fingerprint
    assert repr(int8).endswith("device='cpu', backend='onnx', quantize='int8')")
    assert model.dtype_name == "torch.float32"
    # The torch objects those properties return need torch: a clear error, naming what needs none.
    for prop in ("device", "dtype"):
        with pytest.raises(MissingDependencyError, match=rf"ColBERT.{prop} needs torch.*dtype_name"):
            getattr(model, prop)


def test_torch_on_an_export_is_refused(export: Path) -> None:
    with pytest.raises(InvalidInputError, match="runs on ONNX Runtime only, so backend='torch' does not apply"):
        ColBERT.from_pretrained(export, backend="torch")
    with pytest.raises(InvalidInputError, match="runs on the CPU, not cuda"):
        ColBERT.from_pretrained(export, device="cuda")
    with pytest.raises(InvalidInputError, match="runs float32 graphs .* not torch.bfloat16"):
        ColBERT.from_pretrained(export, dtype="bf16")


def test_a_checkpoint_without_torch_names_the_extra_and_the_export(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError) as caught:
        ColBERT.from_pretrained(prepared / CHECKPOINT)
    assert 'pip install "edgecolbert[torch]"' in str(caught.value)
    assert "edgecolbert export" in str(caught.value)
    with pytest.raises(MissingDependencyError, match=r'pip install "edgecolbert\[torch\]"'):
        ColBERT.from_pretrained(prepared / CHECKPOINT, backend="onnx", onnx_cache_dir=tmp_path)


def test_export_needs_the_torch_extra(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(prepared / CHECKPOINT), str(tmp_path / "out")]) == 2
    assert 'edgecolbert export needs torch, which is not installed: pip install "edgecolbert[torch]"' in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def _expected(export: Path) -> dict[str, float]:
    """MaxSim of the query against each document, computed from the export's vectors: what every path must rank by."""
    model = ColBERT.from_pretrained(export)
    scores = maxsim(model.encode_queries([QUERY]), model.encode_documents(list(DOCUMENTS.values())))[0]
    return dict(zip(DOCUMENTS, (float(score) for score in scores)))


def test_rerank(export: Path) -> None:
    results = Reranker.from_pretrained(export).rerank(QUERY, list(DOCUMENTS.values()))
    expected = _expected(export)
    assert {list(DOCUMENTS)[result.index]: result.score for result in results} == pytest.approx(expected, rel=1e-5)
    assert [result.score for result in results] == sorted(expected.values(), reverse=True)


@pytest.mark.parametrize("first_stage", ["bm25", "muvera", "hybrid-muvera"])
def test_a_store_built_with_the_checkpoint_is_searched_with_the_export(
    prepared: Path, export: Path, tmp_path: Path, first_stage: str
) -> None:
    store_dir = shutil.copytree(prepared / STORE, tmp_path / "store")
    with EdgeStore(store_dir, str(export)) as store:
        hits = store.search(QUERY, top_k=3, first_stage=first_stage)
        assert store.model.origin is not None
    # The store holds the checkpoint's torch vectors in float16; the query comes from the export.
    assert hits and {hit.id: hit.score for hit in hits} == pytest.approx(
        {hit.id: _expected(export)[hit.id] for hit in hits}, rel=1e-2
    )


def test_a_store_opened_without_a_model_loads_its_checkpoint(prepared: Path, tmp_path: Path) -> None:
    store_dir = shutil.copytree(prepared / STORE, tmp_path / "store")
    with pytest.raises(MissingDependencyError, match="edgecolbert export"):
        EdgeStore(store_dir)


def test_index_and_search_a_new_store(export: Path, tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "store", str(export), muvera=True) as store:
        store.add(list(DOCUMENTS.values()), ids=list(DOCUMENTS))
        for first_stage in ("bm25", "muvera", "hybrid-muvera"):
            hits = store.search(QUERY, top_k=3, first_stage=first_stage)
            assert hits and {hit.id: hit.score for hit in hits} == pytest.approx(
                {hit.id: _expected(export)[hit.id] for hit in hits}, rel=1e-2
            )


def test_an_export_store_refuses_another_model(prepared: Path, export: Path, tmp_path: Path) -> None:
    other = shutil.copytree(export, tmp_path / "other")
    manifest = json.loads((other / "edgecolbert-export.json").read_text(encoding="utf-8"))
    manifest["source"]["identity"] = "0" * 24
    (other / "edgecolbert-export.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelMismatchError):
        EdgeStore(shutil.copytree(prepared / STORE, tmp_path / "store"), str(other))


def test_command_line_index_search_and_rerank(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCUMENTS.items():
        (docs / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    store = str(tmp_path / "store")
    assert main(["index", str(docs), "--store", store, "--model", str(export), "--no-progress"]) == 0
    assert "3 new" in capsys.readouterr().out
    # The store reopens with the export it recorded.
    assert main(["search", QUERY, "--store", store, "--json", "--highlight"]) == 0
    hits = json.loads(capsys.readouterr().out)
    by_text = {text: name for name, text in DOCUMENTS.items()}
    assert hits and {by_text[hit["text"]]: hit["score"] for hit in hits} == pytest.approx(
        {by_text[hit["text"]]: _expected(export)[by_text[hit["text"]]] for hit in hits}, rel=1e-2
    )
    assert all("highlights" in hit for hit in hits)
    monkeypatch.setenv(MODEL_ENV_VAR, str(export))
    # An export runs on ONNX Runtime without --backend, so --quantize needs nothing more.
    assert main(["rerank", QUERY, *DOCUMENTS.values(), "--json", "--quantize", "int8"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert sorted(row["index"] for row in ranked) == [0, 1, 2]


def test_serve_reranks_with_the_export(export: Path) -> None:
    pytest.importorskip("fastapi", reason="the service needs the serve extra (fastapi)")
    pytest.importorskip("httpx", reason="the service is called through fastapi's TestClient, which needs httpx")
    from fastapi.testclient import TestClient

    from edgecolbert.serving.app import ServiceSettings, create_app

    with TestClient(create_app(ServiceSettings(model=str(export), quantize="int8"))) as client:
        assert client.post("/v1/rerank", json={"query": QUERY, "documents": ["one"]}).status_code == 200
    with TestClient(create_app(ServiceSettings(model=str(export)))) as client:
        response = client.post("/v1/rerank", json={"query": QUERY, "documents": list(DOCUMENTS.values())})
    assert response.status_code == 200, response.text
    scores = {list(DOCUMENTS)[row["index"]]: row["relevance_score"] for row in response.json()["results"]}
    assert scores == pytest.approx(_expected(export), rel=1e-5)
