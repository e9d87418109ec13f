"""The LangChain examples run as a user runs them, with real MiniLM weights as the late-interaction model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from checkpoints import SHARED, requires_minilm

pytest.importorskip("langchain_core", reason="langchain-core is not installed (pip install -e '.[test]')")

pytestmark = [requires_minilm, pytest.mark.slow]  # each test runs an example in a fresh Python

ROOT = Path(__file__).resolve().parents[3]
SCIFACT = SHARED / "data" / "scifact"


@pytest.fixture(scope="module")
def minilm(shared_minilm: Path) -> Path:
    return shared_minilm


def _run(script: str, *args: str) -> str:
    # This checkout's library and integration, whatever is installed; the model only from --model.
    env = {key: value for key, value in os.environ.items() if key != "EDGECOLBERT_MODEL"}
    paths = [str(ROOT / "src"), str(ROOT / "integrations" / "langchain"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    env["HF_HUB_OFFLINE"] = "1"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def _answers(output: str) -> dict[str, list[str]]:
    """Each question's source lines, in order."""
    blocks: dict[str, list[str]] = {}
    question = None
    for line in output.splitlines():
        if line.startswith("Q: "):
            question = line[3:]
            blocks[question] = []
        elif question is not None and re.match(r"  \[\d+\] ", line):
            blocks[question].append(line)
    return blocks


def test_rag_example_retrieves_the_passage_that_answers(minilm: Path) -> None:
    output = _run("langchain_rag.py", "--model", str(minilm), "--show-prompt")
    assert "store: 12 passages (12 encoded now)" in output
    sources = _answers(output)
    expected_top = {
        "How tall is the Eiffel Tower?": "eiffel",
        "What causes the ocean tides?": "tides",
        "How does a late-interaction model score a document?": "colbert",
    }
    assert set(sources) == set(expected_top)
    for question, top in expected_top.items():
        source_lines = [line for line in sources[question] if "maxsim=" in line]
        assert source_lines and source_lines[0].startswith(f"  [1] {top}  maxsim="), output
        scores = [float(re.search(r"maxsim=(-?[\d.]+)", line).group(1)) for line in source_lines]  # type: ignore[union-attr]
        assert scores == sorted(scores, reverse=True)
    # The prompt the chat model got holds the retrieved passage and the question; the answer came back.
    assert "[1] The Eiffel Tower in Paris was completed in 1889" in output
    assert "Question: How tall is the Eiffel Tower?" in output
    assert output.count("\nA: [a real chat model answers") == 3


@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="../shared/data/scifact is absent")
def test_rag_example_on_a_beir_corpus(minilm: Path) -> None:
    question = "vitamin D deficiency and bone fractures"
    output = _run(
        "langchain_rag.py", "--model", str(minilm), "--dataset", str(SCIFACT), "--limit", "60", "--question", question
    )
    assert "store: 60 passages (60 encoded now)" in output
    lines = _answers(output)[question]
    assert 1 <= len(lines) <= 3
    assert all("maxsim=" in line for line in lines)


def test_qdrant_attach_example_reorders_the_dense_results(minilm: Path) -> None:
    pytest.importorskip("langchain_qdrant", reason="the example builds a langchain-qdrant collection")
    output = _run("langchain_qdrant_attach.py", "--model", str(minilm))
    before = re.findall(r"^  \d\. (.+?)\s+cosine=(-?[\d.]+)$", output, flags=re.MULTILINE)
    after = re.findall(r"^  \d\. (.+?)\s+maxsim=(-?[\d.]+)$", output, flags=re.MULTILINE)
    assert len(before) == 5 and len(after) == 5, output
    assert "attached a colbert vector (10 points encoded" in output
    # Every passage was a candidate (prefetch 10 of 10), so MaxSim puts the one about late interaction first.
    assert after[0][0] == "late interaction"
    scores = [float(score) for _, score in after]
    assert scores == sorted(scores, reverse=True)
    assert "gives the same order: yes" in output
