"""examples/llama_index_rag.py answers through LlamaIndex query engines, offline, with a real local checkpoint."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from checkpoints import MINILM_DIR, requires_minilm

pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (the test extra has it)")

try:
    import llama_index.retrievers.edgecolbert  # noqa: F401
except ImportError:  # not pip-installed: run the integration from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# real all-MiniLM-L6-v2 weights, wrapped as a late-interaction checkpoint
pytestmark = [requires_minilm, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llama_index_rag.py"


@pytest.fixture(scope="module")
def minilm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecolbert.encoding.convert import from_sentence_transformer

    assert MINILM_DIR is not None
    return Path(from_sentence_transformer(MINILM_DIR, tmp_path_factory.mktemp("minilm") / "colbert"))


@pytest.fixture(scope="module")
def example_main() -> Callable[[list[str]], int]:
    return runpy.run_path(str(EXAMPLE))["main"]


def _run(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("query", "answer_id"),
    [("Which city is the capital of France?", "paris"), ("Which river flows through Cairo?", "nile")],
)
def test_both_query_engines_put_the_answer_first(
    example_main: Any, minilm_checkpoint: Path, capsys: pytest.CaptureFixture[str], query: str, answer_id: str
) -> None:
    result = _run(example_main, capsys, query, "--model", str(minilm_checkpoint), "-k", "3")

    assert result["query"] == query
    for key in ("retriever", "reranked"):
        sources = result[key]
        assert 1 <= len(sources) <= 3
        assert sources[0]["id"] == answer_id
        scores = [source["score"] for source in sources]
        assert scores == sorted(scores, reverse=True)
        # MockLLM echoes its prompt: the best passage reached the LLM as context.
        assert sources[0]["text"] in result[f"{key}_answer"]
    # The reranker scores the stored vectors of the same passages the retriever scores.
    retrieved = {source["id"]: source["score"] for source in result["retriever"]}
    for source in result["reranked"]:
        if source["id"] in retrieved:
            assert source["score"] == pytest.approx(retrieved[source["id"]], abs=1e-3)


def test_a_kept_store_is_not_encoded_twice_and_no_hosted_model_is_set(
    example_main: Any, minilm_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llama_index.core import Settings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    options = ("--model", str(minilm_checkpoint), "--store", str(tmp_path / "store"))
    first = _run(example_main, capsys, *options)
    second = _run(example_main, capsys, *options)
    assert first["added"] == 12 and second["added"] == 0
    assert second["retriever"] == first["retriever"]
    assert isinstance(Settings.llm, MockLLM) and isinstance(Settings.embed_model, MockEmbedding)


def test_text_output(example_main: Any, minilm_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert example_main(["--model", str(minilm_checkpoint), "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "EdgeColbertRetriever" in out and "EdgeColbertRerank" in out
    assert "1. paris" in out
