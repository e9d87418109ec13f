"""The command line answers --help and argument errors without importing the model stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecolbert import ColBERT
from edgecolbert.encoding.backends.onnx import CACHE_ENV_VAR
from edgecolbert.store import EdgeStore

HEAVY = ("torch", "transformers", "qdrant_edge", "qdrant_client", "fastapi", "onnxruntime")

PROBE = """
import sys
from edgecolbert.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("imported:" + ",".join(name for name in {heavy!r} if name in sys.modules))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["search", "--help"],
        ["index", "--help"],
        ["serve", "--help"],
        ["export", "--help"],
        ["export", "only-one-argument"],
        ["train", "--help"],
        ["search"],  # a missing argument
        ["search", "q", "--backend", "tensorflow"],  # an invalid choice
    ],
)
def test_help_and_argument_errors_import_nothing_heavy(argv):
    probe = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    imported = probe.stdout.rsplit("imported:", 1)[1].strip()
    assert imported == "", f"edgecolbert {' '.join(argv)} imported {imported}"


FIRST_USE = (
    "import sys, edgecolbert; before = 'edgecolbert.encoding.encoder' in sys.modules; "
    "from edgecolbert import ColBERT, maxsim; from edgecolbert.store import EdgeStore, DEFAULT_STORE_PATH; "
    "print(before, 'edgecolbert.encoding.encoder' in sys.modules, ColBERT.__module__, maxsim.__module__, "
    "EdgeStore.__module__)"
)


def test_public_names_load_on_first_use():
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            FIRST_USE,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [
        "False",
        "True",
        "edgecolbert.encoding.encoder",
        "edgecolbert.scoring.maxsim",
        "edgecolbert.store.edge",
    ]


def test_an_unknown_name_is_an_attribute_error():
    import edgecolbert
    import edgecolbert.store

    with pytest.raises(AttributeError, match="Rerankr"):
        edgecolbert.Rerankr  # noqa: B018
    with pytest.raises(ImportError):
        from edgecolbert.store import EdgeStor  # noqa: F401
    assert {"ColBERT", "Reranker", "maxsim"} <= set(dir(edgecolbert))


SEARCH_PROBE = """
import sys
from edgecolbert.cli import main
code = main(sys.argv[1:])
print("imported:" + ",".join(name for name in ("torch", "transformers", "tqdm") if name in sys.modules))
"""


def _search(store: Path, cache: Path, query: str) -> tuple[str, str]:
    probe = subprocess.run(
        [sys.executable, "-c", SEARCH_PROBE, "search", query, "--store", str(store), "--backend", "onnx", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, CACHE_ENV_VAR: str(cache)},
    )
    assert probe.returncode == 0, probe.stderr
    hits, imported = probe.stdout.rsplit("imported:", 1)
    return hits, imported.strip()


def test_an_onnx_search_after_the_first_imports_neither_torch_nor_transformers(model, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    onnx_model = ColBERT.from_pretrained(model.spec.path, backend="onnx", onnx_cache_dir=cache / "onnx")
    with EdgeStore(tmp_path / "store", onnx_model) as store:
        store.add_documents(["glaciers retreat in warm summers", "a recipe for bread", "ice sheets and sea level"])
    # Loading the model above recorded what transformers worked out, so no search needs it (or torch) again.
    hits, imported = _search(tmp_path / "store", cache, "melting glaciers")
    assert imported == ""
    assert json.loads(hits)[0]["text"] == "glaciers retreat in warm summers"


THREADS = (
    "import sys; from edgecolbert.encoding.backends.onnx import default_threads; guessed = default_threads(); "
    "import torch; print(guessed, torch.get_num_threads(), 'torch' in sys.modules)"
)


@pytest.mark.parametrize(
    "environment", [{}, {"OMP_NUM_THREADS": "1"}, {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "3"}]
)
def test_onnx_threads_without_torch_are_torchs_default(environment: dict[str, str]) -> None:
    clean = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    probe = subprocess.run(
        [sys.executable, "-c", THREADS],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **environment},
    )
    assert probe.returncode == 0, probe.stderr
    guessed, actual, _ = probe.stdout.split()
    assert guessed == actual
