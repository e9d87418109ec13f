"""Evaluation with the fast encoder paths: each configuration is cached apart and named in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, InvalidInputError
from edgecolbert.cli import main
from edgecolbert.encoding.backends.onnx import CACHE_ENV_VAR
from edgecolbert.evaluation import evaluate
from edgecolbert.evaluation.cache import model_key
from edgecolbert.store import EdgeStore

pytestmark = requires_minilm
pytest.importorskip("pytrec_eval", reason="evaluation scores with pytrec-eval-terrier")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (the 'onnx' extra)")

TOPICS = ["violins", "comets", "glaciers", "volcanoes", "honeybees", "lighthouses"]


def _collection(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for topic in TOPICS:
            for i in range(3):
                text = f"{topic} are described in note {i}, with details on how {topic} behave"
                corpus.write(json.dumps({"_id": f"{topic}-{i}", "title": topic, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as queries:
        for topic in TOPICS:
            queries.write(json.dumps({"_id": f"q-{topic}", "text": f"how do {topic} behave"}) + "\n")
    judgments = [f"q-{topic}\t{topic}-{i}\t1" for topic in TOPICS for i in range(2)]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(judgments) + "\n")
    return folder


@pytest.fixture(autouse=True)
def _exports_in_a_test_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "exports"))


@pytest.mark.slow
def test_every_configuration_has_its_own_cache_key(model: ColBERT, tmp_path: Path) -> None:
    folder = Path(model.name)
    fp32 = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=tmp_path / "onnx")
    int8 = ColBERT.from_pretrained(folder, backend="onnx", quantize="int8", onnx_cache_dir=tmp_path / "onnx")
    keys = {model_key(m) for m in (model, model.with_pool_factor(2), model.with_pool_factor(3), fp32, int8)}
    assert len(keys) == 5
    assert model_key(ColBERT.from_pretrained(folder, device="cpu")) == model_key(model)


@pytest.mark.slow
def test_cli_eval_with_int8_and_pooling_records_them_and_caches_apart(
    model: ColBERT, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _collection(tmp_path / "data")
    base = ["eval", "--dataset", str(dataset), "--model", model.name, "--cache-dir", str(tmp_path / "cache")]
    fast = ["--backend", "onnx", "--quantize", "int8", "--pool-factor", "2", "--no-progress"]
    assert main([*base, *fast, "--json", str(tmp_path / "fast.json")]) == 0
    assert "(onnx, int8, pool factor 2)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "fast.json").read_text())
    assert (summary["backend"], summary["quantize"], summary["pool_factor"]) == ("onnx", "int8", 2)
    assert summary["encoded_documents"] == 18
    with EdgeStore(summary["store"], model) as store:
        assert store.schema.pool_factor == 2

    # The torch fp32 unpooled run must not read the int8 pooled vectors back: it encodes the corpus itself.
    assert main([*base, "--no-progress", "--json", str(tmp_path / "plain.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert (plain["backend"], plain["quantize"], plain["pool_factor"]) == ("torch", None, 1)
    assert plain["encoded_documents"] == 18 and plain["store"] != summary["store"]

    # The same fast configuration again finds its own vectors.
    assert main([*base, *fast, "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["encoded_documents"] == 0 and again["store"] == summary["store"]


def test_a_given_model_carries_its_own_configuration(model: ColBERT, tmp_path: Path) -> None:
    dataset = _collection(tmp_path / "data")
    with pytest.raises(InvalidInputError, match="pool_factor, quantize apply when the model is loaded by name"):
        evaluate(dataset, model, cache_dir=tmp_path / "cache", quantize="int8", pool_factor=2)
    report = evaluate(dataset, model.with_pool_factor(3), cache_dir=tmp_path / "cache")
    assert (report.backend, report.quantize, report.pool_factor) == ("torch", None, 3)
    assert "pool factor 3" in report.table()


def test_eval_refuses_quantize_without_onnx(model: ColBERT, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = _collection(tmp_path / "data")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", "--dataset", str(dataset), "--model", model.name, *cache, "--quantize", "int8"]) == 2
    assert "--quantize int8 needs --backend onnx" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
