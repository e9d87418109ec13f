"""compile=True: the TorchInductor-compiled backbone gives the eager vectors, and fails soft or early."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from checkpoints import build_edge_checkpoint, build_stanford_checkpoint, requires_minilm, requires_shared
from edgecolbert import ColBERT, InvalidInputError, MultiVectors
from edgecolbert.cli import main
from edgecolbert.encoding.backends import compiled
from edgecolbert.encoding.backends.compiled import CompiledTorchBackend
from edgecolbert.errors import InvalidTypeError, MissingDependencyError
from edgecolbert.serving import app as server
from edgecolbert.serving.app import ServiceSettings

needs_compiler = pytest.mark.skipif(
    compiled.find_cpp_compiler() is None, reason="TorchInductor needs a C++ compiler (g++ or clang++) on the CPU"
)

QUERIES = ["rivers and mountains", "what do cats eat?", "a"]
DOCUMENTS = [
    "a short note about cats and dogs",
    "rivers run down from the mountains to the sea",
    " ".join(f"word{i} about rivers, mountains and valleys" for i in range(30)),
    "!!! ,,, ...",
    "",
    "the last one, alone in its batch of one",
]


@pytest.fixture(scope="module")
def stanford_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford"))


@pytest.fixture(autouse=True)
def _fresh_compiler_state() -> Iterator[None]:
    # Compiled graphs are cached per process; each test compiles under its own settings.
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _assert_same_vectors(got: MultiVectors, expected: MultiVectors) -> None:
    np.testing.assert_array_equal(got.lengths, expected.lengths)
    np.testing.assert_allclose(got.data, expected.data, atol=1e-5)


def _assert_matches_eager(folder: Path) -> ColBERT:
    eager = ColBERT.from_pretrained(folder, device="cpu")
    compiled = ColBERT.from_pretrained(folder, device="cpu", compile=True)
    assert isinstance(compiled.engine, CompiledTorchBackend) and "compile=True" in repr(compiled)
    # Batches of 4 and then 2 documents run compiled; the batch of 1 and the single query run eager.
    _assert_same_vectors(
        compiled.encode_documents(DOCUMENTS, batch_size=4), eager.encode_documents(DOCUMENTS, batch_size=4)
    )
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1, "the batches ran through the compiled backbone"
    _assert_same_vectors(
        compiled.encode_documents(DOCUMENTS, batch_size=5), eager.encode_documents(DOCUMENTS, batch_size=5)
    )
    _assert_same_vectors(compiled.encode_queries(QUERIES), eager.encode_queries(QUERIES))
    np.testing.assert_allclose(compiled.encode_query(QUERIES[0]), eager.encode_query(QUERIES[0]), atol=1e-5)
    assert compiled.engine.active, "the graph compiled and stayed in use"
    # Other batch sizes and lengths reuse the graphs built for the first ones, and single texts run
    # eager, so nothing was compiled a second time.
    assert counters["stats"]["unique_graphs"] == graphs
    # Compiling changes float rounding only, so stores and caches treat both as the same encoder.
    assert compiled.fingerprint == eager.fingerprint
    return compiled


@needs_compiler
@requires_minilm
@pytest.mark.slow
def test_bert_backbone_compiled_matches_eager(stanford_dir: Path) -> None:
    _assert_matches_eager(stanford_dir)


@needs_compiler
@requires_shared
@pytest.mark.slow
def test_modernbert_backbone_compiled_matches_eager(tmp_path: Path) -> None:
    # Three layers keep both attention types: global, local (sliding window), global.
    _assert_matches_eager(build_edge_checkpoint(tmp_path / "edge", num_hidden_layers=3))


@needs_compiler
@requires_minilm
@pytest.mark.slow
def test_models_loaded_later_in_the_process_reuse_the_graph(stanford_dir: Path) -> None:
    # Torch stops compiling a function after 8 recompiles and runs it eager from then on. Each
    # recompile adds a graph, so an unchanged graph count over more models than that limit shows
    # the later models run the graph the first one built.
    first = ColBERT.from_pretrained(stanford_dir, device="cpu", compile=True)
    first.encode_documents(DOCUMENTS, batch_size=4)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    for _ in range(torch._dynamo.config.recompile_limit + 2):
        later = ColBERT.from_pretrained(stanford_dir, device="cpu", compile=True)
        later.encode_documents(DOCUMENTS, batch_size=4)
    assert counters["stats"]["unique_graphs"] == graphs


# A compiler that does not exist, so Inductor cannot build the graph: the two batches must run eager,
# equal to the eager model's, with one warning. It runs in a process of its own because Inductor keeps
# what it probed of the broken toolchain for the rest of the process, where later compiles would fail.
BROKEN_TOOLCHAIN = """
import json, logging, sys
import numpy as np
import torch
from edgecolbert import ColBERT

torch._inductor.config.cpp.cxx = ("/nonexistent/c++",)
folder, documents = sys.argv[1], json.loads(sys.argv[2])
messages = []
handler = logging.Handler(logging.WARNING)
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger("edgecolbert.encoding.backends.compiled").addHandler(handler)
eager = ColBERT.from_pretrained(folder, device="cpu")
compiled = ColBERT.from_pretrained(folder, device="cpu", compile=True)
runs = [compiled.encode_documents(documents, batch_size=4) for _ in range(2)]
expected = eager.encode_documents(documents, batch_size=4)
print(json.dumps({
    "engine": type(compiled.engine).__name__,
    "active": compiled.engine.active,
    "warnings": [message for message in messages if "could not compile" in message],
    "same_lengths": all(np.array_equal(run.lengths, expected.lengths) for run in runs),
    "max_difference": max(float(np.abs(run.data - expected.data).max()) for run in runs),
}))
"""


@needs_compiler
@requires_minilm
@pytest.mark.slow
def test_broken_toolchain_falls_back_to_eager(stanford_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_TOOLCHAIN, str(stanford_dir), json.dumps(DOCUMENTS)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["engine"] == "CompiledTorchBackend" and not report["active"]
    assert len(report["warnings"]) == 1, "the failure is logged once, not per batch"
    assert report["same_lengths"] and report["max_difference"] <= 1e-5


def test_compile_without_a_cpp_compiler_fails_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    # The folder does not exist: the compiler is checked first, so that is not what is reported.
    with pytest.raises(MissingDependencyError, match="C\\+\\+ compiler"):
        ColBERT.from_pretrained("/nonexistent/checkpoint", device="cpu", compile=True)


def test_cxx_names_the_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    compiler = tmp_path / "my-c++"
    compiler.write_text("#!/bin/sh\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    assert compiled.find_cpp_compiler() == str(compiler)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"compile": True, "backend": "onnx"}, InvalidInputError, "compiles the torch backend"),
        ({"compile": "yes"}, InvalidTypeError, "compile must be True or False"),
    ],
)
def test_bad_compile_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ColBERT.from_pretrained("/nonexistent/checkpoint", device="cpu", **kwargs)


def test_service_settings_pass_compile_to_the_model() -> None:
    assert ServiceSettings(compile=True).model_kwargs()["compile"] is True
    assert "compile" not in ServiceSettings().model_kwargs()
    with pytest.raises(ValueError, match="compiles the torch backend"):
        ServiceSettings(compile=True, backend="onnx")


def test_serve_flag_reaches_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[ServiceSettings] = []
    monkeypatch.setattr(server, "create_app", lambda settings: served.append(settings) or settings)
    monkeypatch.setattr(server, "serve", lambda app, host, port, log_level: None)
    assert main(["serve", "--model", "/nonexistent/checkpoint", "--compile"]) == 0
    (settings,) = served
    assert settings.compile and settings.model_kwargs()["compile"] is True
