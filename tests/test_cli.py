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


@pytest.mark.slow
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


def test_convert_gives_documents_every_position_the_backbone_has(model_dir: Path) -> None:
    from edgecolbert import ColBERT

    config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    # MiniLM's BERT has 512 positions; its sentence-transformers max_seq_length (256) does not bind token vectors.
    assert config["document_length"] == 512 and config["query_length"] == 64
    model = ColBERT.from_pretrained(model_dir, device="cpu")
    (ids,), truncated = model.tokenizer.token_ids([" ".join(["word"] * 600)], "document")
    assert truncated == 1 and len(ids) == 512
    vectors = model.encode_documents([" ".join(["word"] * 400)])
    assert vectors.lengths.tolist() == [402]  # [CLS], 400 words, [SEP]: nothing cut


def test_convert_honours_and_checks_a_given_document_length(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "short"
    assert main(["convert", str(MINILM_DIR), str(target), "--document-length", "300"]) == 0
    assert json.loads((target / "config_sentence_transformers.json").read_text())["document_length"] == 300
    capsys.readouterr()
    assert main(["convert", str(MINILM_DIR), str(tmp_path / "long"), "--document-length", "513"]) == 2
    assert "document_length=513 exceeds the backbone's 512" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["rerank", "index", "serve", "eval"])
def test_commands_that_encode_documents_take_a_document_length(command: str) -> None:
    from edgecolbert.cli.main import _model_kwargs, _parser

    extra = {"rerank": ["q"], "index": ["corpus"], "serve": [], "eval": ["--dataset", "d"]}[command]
    args = _parser().parse_args([command, *extra, "--document-length", "400"])
    assert _model_kwargs(args)["document_length"] == 400


def test_serve_loads_its_model_with_the_document_length() -> None:
    from edgecolbert.serving.app import ServiceSettings

    assert ServiceSettings(document_length=400).model_kwargs()["document_length"] == 400
    assert "document_length" not in ServiceSettings().model_kwargs()


def test_loading_a_checkpoint_shows_no_weight_loading_bar(model_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    assert main(["rerank", "--model", str(model_dir), "q", "a document", "--json"]) == 0
    assert "Loading weights" not in capsys.readouterr().err
    # The switch is the caller's again afterwards, whichever way it was set.
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        assert main(["rerank", "--model", str(model_dir), "q", "a document", "--json"]) == 0
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


@pytest.mark.parametrize(
    ("config", "tokenizer_max", "limit"),
    [
        ({"model_type": "bert", "max_position_embeddings": 512}, 512, 512),
        ({"model_type": "bert", "max_position_embeddings": 512}, int(1e30), 512),  # "no limit" sentinel
        ({"model_type": "bert", "max_position_embeddings": 512}, 256, 256),
        ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, None, 512),
        ({"model_type": "modernbert", "max_position_embeddings": 8192}, 8192, 8192),
    ],
)
def test_the_backbone_length_limit_counts_only_usable_positions(
    tmp_path: Path, config: dict, tokenizer_max: int | None, limit: int
) -> None:
    from edgecolbert.encoding.convert import backbone_length_limit

    (tmp_path / "config.json").write_text(json.dumps(config))
    if tokenizer_max is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": tokenizer_max}))
    assert backbone_length_limit(tmp_path) == limit
