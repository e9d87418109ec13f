"""The command line answers --help and argument errors without importing the model stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    "import sys, edgecolbert; before = 'torch' in sys.modules; from edgecolbert import ColBERT, maxsim; "
    "from edgecolbert.store import EdgeStore, DEFAULT_STORE_PATH; "
    "print(before, 'torch' in sys.modules, ColBERT.__module__, maxsim.__module__, EdgeStore.__module__)"
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
