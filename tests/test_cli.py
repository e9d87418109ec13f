"""The edgecolbert command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checkpoints import MINILM_DIR, requires_minilm
from edgecolbert.cli import main

pytestmark = requires_minilm


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("cli") / "minilm-colbert"
    assert main(["convert", str(MINILM_DIR), str(target)]) == 0
    return target


def test_rerank_json(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "rerank",
            "--model",
            str(model_dir),
            "capital of France",
            "Bananas are yellow.",
            "Paris is the capital of France.",
            "--json",
        ]
    )
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in results] == [1, 0]
    # The result type the reranker and the stores share: plain strings have no id and no metadata.
    assert set(results[0]) == {"id", "index", "score", "normalized_score", "text", "metadata"}
    assert (results[0]["id"], results[0]["text"], results[0]["metadata"]) == (
        None,
        "Paris is the capital of France.",
        {},
    )


def test_rerank_reads_candidates_from_a_file(model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    candidates = tmp_path / "candidates.txt"
    candidates.write_text("Bananas are yellow.\n\nBerlin is in Germany.\nParis is the capital of France.\n")
    assert main(["rerank", "--model", str(model_dir), "capital of France", "--file", str(candidates), "-k", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "Paris" in lines[0]


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "no-such-model"
    assert main(["rerank", "--model", str(missing), "query", "doc"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_blank_query_exits_2(model_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["rerank", "--model", str(model_dir), "   ", "doc"]) == 2
    assert "empty" in capsys.readouterr().err


def test_console_script_is_installed(model_dir: Path) -> None:
    script = Path(sys.executable).with_name("edgecolbert")
    assert script.is_file(), "the edgecolbert console script is not installed beside this Python"
    completed = subprocess.run(
        [str(script), "rerank", "--model", str(model_dir), "q", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == []
