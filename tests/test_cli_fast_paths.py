"""The fast-path model options of every command: --backend, --quantize, --pool-factor and --compile."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from checkpoints import build_stanford_checkpoint, requires_minilm
from edgecolbert.cli import main
from edgecolbert.encoding.backends.onnx import CACHE_ENV_VAR
from edgecolbert.serving import app as server
from edgecolbert.store import EdgeStore

pytestmark = requires_minilm
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (the 'onnx' extra)")

QUERY = "rivers and mountains"
CANDIDATES = [
    "a short note about cats and dogs",
    "rivers run down from the mountains to the sea",
    " ".join(f"word{i} about rivers, mountains and valleys" for i in range(5)),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford"), doc_maxlen=64)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _exports_in_a_test_folder(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI exports to $EDGECOLBERT_CACHE/onnx; one folder per module, so each export happens once.
    monkeypatch.setenv(CACHE_ENV_VAR, str(onnx_cache))


def _rerank(model_dir: Path, capsys: pytest.CaptureFixture[str], *options: str) -> list[dict[str, Any]]:
    assert main(["rerank", "--model", str(model_dir), QUERY, *CANDIDATES, "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def _scores(results: list[dict[str, Any]]) -> dict[int, float]:
    return {result["index"]: result["score"] for result in results}


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert captured.out == ""
    return lines[0]


def test_rerank_with_onnx_matches_torch(model_dir: Path, onnx_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch_scores = _scores(_rerank(model_dir, capsys))
    onnx_results = _rerank(model_dir, capsys, "--backend", "onnx")
    assert list(onnx_cache.rglob("model.onnx")), "the ONNX export went to $EDGECOLBERT_CACHE"
    assert _scores(onnx_results).keys() == torch_scores.keys()
    for index, score in _scores(onnx_results).items():
        assert score == pytest.approx(torch_scores[index], rel=1e-4)


def test_rerank_with_int8_and_pooling(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = _scores(_rerank(model_dir, capsys, "--backend", "onnx"))
    int8 = _rerank(model_dir, capsys, "--backend", "onnx", "--quantize", "int8")
    assert sorted(result["index"] for result in int8) == [0, 1, 2]
    pooled = _scores(_rerank(model_dir, capsys, "--backend", "onnx", "--pool-factor", "3"))
    # Pooling merges document vectors, so scores change; the query is never pooled.
    assert all(pooled[index] != pytest.approx(plain[index], rel=1e-4) for index in plain)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--quantize", "int8"], "--quantize int8 needs --backend onnx"),
        (["--backend", "torch", "--quantize", "int8"], "--quantize int8 needs --backend onnx"),
        (["--pool-factor", "0"], "--pool-factor must be a positive integer"),
        (["--backend", "onnx", "--device", "cuda"], "runs on the CPU"),
        (["--backend", "onnx", "--compile"], "--compile compiles the torch backend"),
    ],
)
def test_bad_combinations_exit_2_with_one_line(
    model_dir: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["rerank", "--model", str(model_dir), QUERY, *CANDIDATES, *options]) == 2
    assert message in _one_line_error(capsys)


def test_unknown_backend_is_an_argument_error(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["rerank", "--model", str(model_dir), QUERY, "doc", "--backend", "tensorrt"])
    assert exited.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_search_encodes_no_documents_so_takes_no_pool_factor(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["search", QUERY, "--pool-factor", "2"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --pool-factor" in capsys.readouterr().err


def test_missing_onnxruntime_names_the_extra(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["rerank", "--model", str(model_dir), QUERY, "doc", "--backend", "onnx"]) == 2
    assert 'pip install "edgecolbert[onnx]"' in _one_line_error(capsys)


def _documents(folder: Path) -> Path:
    folder.mkdir()
    for i, text in enumerate(CANDIDATES):
        (folder / f"note{i}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def _search(store: Path, capsys: pytest.CaptureFixture[str], *options: str) -> list[dict[str, Any]]:
    assert main(["search", QUERY, "--store", str(store), "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_index_pooled_with_onnx_then_search_with_torch_and_int8(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    docs = _documents(tmp_path / "docs")
    index = ["index", str(docs), "--store", str(store), "--model", str(model_dir), "--no-progress"]
    assert main([*index, "--backend", "onnx", "--pool-factor", "2"]) == 0
    assert "3 new" in capsys.readouterr().out
    with EdgeStore(store) as opened:
        assert opened.schema.pool_factor == 2
    by_torch = _search(store, capsys)
    by_onnx = _search(store, capsys, "--backend", "onnx")
    by_int8 = _search(store, capsys, "--backend", "onnx", "--quantize", "int8")
    # BM25 finds the two notes that share words with the query; MaxSim orders them.
    assert len(by_torch) == 2 and {hit["id"] for hit in by_int8} == {hit["id"] for hit in by_torch}
    assert [hit["id"] for hit in by_onnx] == [hit["id"] for hit in by_torch]
    for onnx_hit, torch_hit in zip(by_onnx, by_torch):
        assert onnx_hit["score"] == pytest.approx(torch_hit["score"], rel=1e-3)  # float16 storage
    # Indexing again without --pool-factor keeps the store's; another pool factor is refused.
    assert main([*index]) == 0
    assert "3 unchanged" in capsys.readouterr().out
    assert main([*index, "--pool-factor", "3"]) == 2
    assert "pool_factor=2; opened with pool_factor=3" in _one_line_error(capsys)


def test_serve_loads_the_model_as_asked(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[server.ServiceSettings] = []
    monkeypatch.setattr(server, "create_app", lambda settings: served.append(settings) or settings)
    monkeypatch.setattr(server, "serve", lambda app, host, port, log_level: None)
    options = ["--backend", "onnx", "--quantize", "int8", "--pool-factor", "2"]
    assert main(["serve", "--model", str(model_dir), *options]) == 0
    (settings,) = served
    assert (settings.backend, settings.quantize, settings.pool_factor) == ("onnx", "int8", 2)
    reranker, store = settings.open()
    assert store is None
    assert (reranker.model.backend, reranker.model.quantize, reranker.model.pool_factor) == ("onnx", "int8", 2)
    assert main(["serve", "--model", str(model_dir), "--quantize", "int8"]) == 2
    assert "needs --backend onnx" in _one_line_error(capsys)
    assert main(["serve", "--model", str(model_dir), "--pool-factor", "-1"]) == 2
    assert "--pool-factor must be a positive integer" in _one_line_error(capsys)


def test_serve_with_a_store_keeps_its_pooling(model_dir: Path, tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "store", str(model_dir), pool_factor=3) as store:
        store.add(CANDIDATES)
    settings = server.ServiceSettings(store=tmp_path / "store", backend="onnx")
    reranker, store = settings.open()
    assert store is not None
    try:
        assert reranker.model.backend == "onnx" and store.model.pool_factor == 3
    finally:
        store.close()
    with pytest.raises(ValueError, match="needs backend='onnx'"):
        server.ServiceSettings(quantize="int8")
