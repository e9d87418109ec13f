"""Every Python snippet in the README runs as written, with a local checkpoint in place of the hub id."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from checkpoints import requires_minilm, requires_shared

pytestmark = [requires_shared, requires_minilm]

README = Path(__file__).resolve().parents[1] / "README.md"
HUB_ID = "mixedbread-ai/mxbai-edge-colbert-v0-17m"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def checkpoint(shared_edge: Path) -> Path:
    # The 17m layout: the snippets' document_length=4096 needs Ettin's positions.
    return shared_edge


def test_the_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize(
    "snippet",
    [
        # The ONNX snippet exports the model first: seconds on 2 cores.
        pytest.param(snippet, id=f"snippet{i}", marks=[pytest.mark.slow] if 'backend="onnx"' in snippet else [])
        for i, snippet in enumerate(SNIPPETS, start=1)
    ],
)
def test_a_readme_snippet_runs_as_written(
    snippet: str, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if 'backend="onnx"' in snippet:
        pytest.importorskip("onnxruntime", reason="the ONNX snippet needs the onnx extra")
        monkeypatch.setenv("EDGECOLBERT_CACHE", str(tmp_path / "cache"))
    for module in re.findall(r"^from (langchain_\w+|llama_index\.\S+) import", snippet, flags=re.MULTILINE):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e integrations/...)")
    assert HUB_ID in snippet, "each snippet names the model it loads"
    script = tmp_path / "snippet.py"
    script.write_text(snippet.replace(HUB_ID, str(checkpoint)), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # stores go to ./edgecolbert_data
    runpy.run_path(str(script), run_name="readme")
