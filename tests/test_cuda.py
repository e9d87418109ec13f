"""On a CUDA device: the encoder matches the CPU, compiled or not, and training runs there and saves a model
that loads alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoints import build_stanford_checkpoint, requires_minilm
from edgecolbert import ColBERT
from edgecolbert.encoding.backends.compiled import CompiledTorchBackend
from edgecolbert.scoring.maxsim import maxsim
from training_fixtures import synonym_collection, write_pairs

pytestmark = [
    requires_minilm,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

TEXTS = ["late interaction keeps one vector per token", "the sun is a star", " ".join(["long"] * 300)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stanford_checkpoint(tmp_path_factory.mktemp("tiny"), seed=0)


def test_cuda_encodes_as_the_cpu_does(tiny: Path) -> None:
    cpu = ColBERT.from_pretrained(tiny, device="cpu")
    gpu = ColBERT.from_pretrained(tiny, device="cuda")
    for on_cpu, on_gpu in zip(cpu.encode_documents(TEXTS), gpu.encode_documents(TEXTS), strict=True):
        np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-5)
    query = "what is a star"
    np.testing.assert_allclose(
        maxsim(gpu.encode_query(query), gpu.encode_documents(TEXTS)),
        maxsim(cpu.encode_query(query), cpu.encode_documents(TEXTS)),
        rtol=1e-5,
    )


def test_compiled_on_cuda_encodes_as_eager(tiny: Path) -> None:
    pytest.importorskip("triton", reason="compile=True on CUDA needs triton")
    eager = ColBERT.from_pretrained(tiny, device="cuda")
    compiled = ColBERT.from_pretrained(tiny, device="cuda", compile=True)
    # Batches of two and more run the compiled graph; the last batch of one runs eager.
    for batch_size in (2, 3):
        got = compiled.encode_documents(TEXTS, batch_size=batch_size)
        expected = eager.encode_documents(TEXTS, batch_size=batch_size)
        np.testing.assert_array_equal(got.lengths, expected.lengths)
        np.testing.assert_allclose(got.data, expected.data, atol=1e-4)
    assert isinstance(compiled.engine, CompiledTorchBackend) and compiled.engine.active, (
        "the graph compiled and stayed in use"
    )


def test_training_on_cuda_saves_a_model_both_libraries_load_alike(tiny: Path, tmp_path: Path) -> None:
    for package in ("datasets", "bm25s"):
        pytest.importorskip(package, reason=f"training needs {package} (edgecolbert[train])")
    from sentence_transformers import MultiVectorEncoder

    from edgecolbert.training import TrainSettings, train

    queries, documents = synonym_collection(32)
    data = write_pairs(tmp_path / "train.jsonl", queries, documents)
    report = train(
        TrainSettings(
            model=str(tiny), train=data, out=tmp_path / "out", batch_size=8, max_steps=2, device="cuda", progress=False
        )
    )
    assert report.steps == 2
    ours = ColBERT.from_pretrained(tmp_path / "out", device="cpu")
    theirs = MultiVectorEncoder(str(tmp_path / "out"), device="cpu")
    for mine, reference in zip(ours.encode_documents(TEXTS), theirs.encode_document(TEXTS), strict=True):
        np.testing.assert_allclose(mine, reference.float().numpy(), atol=1e-5)
