"""`edgecolbert index` and `edgecolbert search`, and what survives a killed indexing run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checkpoints import build_stanford_checkpoint, requires_minilm
from edgecolbert.cli import main
from edgecolbert.store import EdgeStore

pytestmark = requires_minilm


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford"), doc_maxlen=40)


def _jsonl(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            record = {
                "id": f"r{i}",
                "title": f"Title {i}",
                "text": f"record {i} about topic {i % 9}",
                "metadata": {"i": i},
            }
            handle.write(json.dumps(record) + "\n")
    return path


def test_index_then_search_a_folder_of_text_files(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "install.md").write_text("# Install\n\nRun pip install to set up the tool.\n")
    long_text = "\n\n".join(f"Paragraph {i} talks about glaciers and the ice of region {i}." for i in range(30))
    (docs / "glaciers.txt").write_text(long_text)
    (docs / "skip.pdf").write_bytes(b"%PDF")
    store = tmp_path / "store"

    assert main(["index", str(docs), "--store", str(store), "--model", str(model_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0 re-encoded" in out
    with EdgeStore(store) as opened:
        total = opened.count()
    # The 30-paragraph file does not fit one 40-token passage, so it was split.
    assert total > 2 and f"holds {total}" in out

    assert main(["search", "glaciers and ice", "--store", str(store), "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3
    assert all(set(hit) == {"id", "score", "normalized_score", "text", "metadata", "index"} for hit in hits)
    for hit in hits:
        source = hit["metadata"]["source"]
        assert source == "glaciers.txt" and hit["id"].startswith("glaciers.txt#")
        assert long_text[hit["metadata"]["start"] : hit["metadata"]["end"]] == hit["text"]
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)

    assert main(["search", "install", "--store", str(store), "--filter", '{"source": "guide/install.md"}']) == 0
    assert "guide/install.md#" in capsys.readouterr().out


def test_rerunning_index_skips_what_is_stored(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "records.jsonl", 40)
    args = ["index", str(corpus), "--store", str(tmp_path / "store"), "--model", str(model_dir), "--no-progress"]
    assert main(args) == 0
    assert "40 new" in capsys.readouterr().out
    assert main(args[:-3] + ["--no-progress"]) == 0  # the store remembers its model
    assert "0 new, 0 re-encoded, 0 metadata updates, 40 unchanged" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", str(tmp_path / "store"), "--model", str(model_dir)]
    assert main(["index", str(tmp_path / "missing.jsonl"), *store]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "text": "fine"}\n{"id": 2}\n')
    assert main(["index", str(tmp_path / "bad.jsonl"), *store, "--no-progress"]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["search", "   ", *store]) == 2
    assert "empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "x", *store, "--filter", "{not json"])
    assert "--filter takes a JSON object" in capsys.readouterr().err


def test_one_id_on_two_different_lines_writes_nothing(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "records.jsonl", 6)
    with corpus.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "r1", "text": "another text under r1"}) + "\n")
    store = tmp_path / "store"
    args = ["index", str(corpus), "--store", str(store), "--model", str(model_dir), "--no-progress"]
    assert main([*args, "--write-batch", "2"]) == 2
    assert "lines 2 and 7 both have the id 'r1' but different content" in capsys.readouterr().err
    with EdgeStore(store) as opened:
        assert opened.count() == 0


def test_mixed_id_keys_index_every_line_under_its_own_id(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "mixed.jsonl"
    lines = [{"id": "a", "text": "first"}, {"_id": "b", "text": "second"}, {"id": "a", "text": "first"}]
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    args = ["index", str(corpus), "--store", str(tmp_path / "store"), "--model", str(model_dir), "--no-progress"]
    assert main([*args, "--write-batch", "1"]) == 0
    assert "2 new, 0 re-encoded" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 new, 0 re-encoded, 0 metadata updates, 2 unchanged; the store holds 2" in capsys.readouterr().out
    with EdgeStore(tmp_path / "store") as opened:
        assert [hit.id for hit in opened.get(["a", "b"])] == ["a", "b"]


def test_search_of_a_mistyped_store_is_refused_not_created(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mistyped = tmp_path / "stroe"
    assert main(["search", "anything", "--store", str(mistyped), "--model", str(model_dir)]) == 2
    assert f"No store at {mistyped}: the folder does not exist" in capsys.readouterr().err
    assert not mistyped.exists()


_INDEXER = textwrap.dedent(
    """
    import sys
    from edgecolbert.sources.pipeline import index_path
    from edgecolbert.store import EdgeStore

    store = EdgeStore(sys.argv[1], sys.argv[2])
    def acknowledged(ids):
        print("ACK " + " ".join(ids), flush=True)
    index_path(store, sys.argv[3], batch_size=25, progress=False, on_batch=acknowledged)
    """
)


def test_kill_during_indexing_loses_no_acknowledged_batch(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "records.jsonl", 3000)
    store = tmp_path / "store"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-c", _INDEXER, str(store), str(model_dir), str(corpus)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    acknowledged: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("ACK "):
            acknowledged.extend(line.split()[1:])
        if len(acknowledged) >= 100:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the indexer finished before it could be killed"
    assert 100 <= len(acknowledged) < 3000

    with EdgeStore(store) as reopened:
        stored = reopened.get(acknowledged)
        assert [hit.id for hit in stored] == acknowledged
        assert reopened.count() < 3000

    # The same command finishes the rest, encoding only what is missing.
    assert main(["index", str(corpus), "--store", str(store), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "holds 3000" in out
    unchanged = int(out.split(" unchanged")[0].rsplit(" ", 1)[-1])
    assert unchanged >= len(acknowledged)


def test_unreachable_qdrant_server_is_named(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", "anything", "--qdrant-url", "http://127.0.0.1:1", "--model", str(model_dir)]
    assert main(args) == 2
    assert "Could not reach Qdrant at http://127.0.0.1:1" in capsys.readouterr().err


def test_truncation_is_reported_once_per_indexing_run(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    corpus = tmp_path / "long.jsonl"
    with corpus.open("w") as handle:
        for i in range(30):
            handle.write(json.dumps({"id": i, "text": " ".join(["word"] * (20 + 10 * i))}) + "\n")
    store = ["--store", str(tmp_path / "store"), "--model", str(model_dir), "--no-progress", "--write-batch", "5"]
    with caplog.at_level("WARNING", logger="edgecolbert"):
        assert main(["index", str(corpus), *store]) == 0
    warnings = [record for record in caplog.records if "truncated" in record.getMessage()]
    # doc_maxlen is 40: every text of 38 words or more is cut, over six write batches, reported once.
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("28 of 30 documents")
    assert "28 documents were longer" in capsys.readouterr().out
