"""Reading documents to index from BEIR folders, JSONL files and folders of text files."""

from __future__ import annotations

import json
import logging
import os
import random
import tracemalloc
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from edgecolbert.errors import InvalidInputError, SourceError
from edgecolbert.sources.paths import count_documents, read_documents, split_passages
from edgecolbert.store.documents import StoreDocument


def write_jsonl(path: Path, records: Sequence[dict[str, Any] | str]) -> Path:
    """Write records as JSON lines; a str is written verbatim, so tests can plant blank or broken lines."""
    lines = [record if isinstance(record, str) else json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def count_chars(texts: Sequence[str]) -> list[int]:
    return [len(text) for text in texts]


def count_words_plus_specials(texts: Sequence[str]) -> list[int]:
    """Like a tokenizer that adds [CLS] and [SEP] and gives each line break a token of its own."""
    return [len(text.split()) + text.count("\n") + 2 for text in texts]


def assert_passages_are_slices(path: Path, documents: list[StoreDocument]) -> None:
    texts = {}
    for document in documents:
        source, start, end = document.metadata["source"], document.metadata["start"], document.metadata["end"]
        if source not in texts:
            texts[source] = (path / source if path.is_dir() else path).read_text(encoding="utf-8", errors="replace")
        assert texts[source][start:end] == document.text
        assert document.text.strip() == document.text != ""
        assert document.id == f"{source}#{start}-{end}"


# ---------------------------------------------------------------------------------------------
# BEIR


def test_beir_folder(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Paris", "text": "Capital of France.", "metadata": {"lang": "en"}},
            {"_id": 2, "title": "", "text": "No title here."},
            {"_id": "d3", "text": "Title missing.", "metadata": {"title": "ignored", "year": 2020}},
        ],
    )
    (tmp_path / "notes.txt").write_text("A text file beside the corpus is not indexed.", encoding="utf-8")

    documents = list(read_documents(tmp_path))

    assert documents == [
        StoreDocument(text="Paris Capital of France.", id="d1", metadata={"lang": "en", "title": "Paris"}),
        StoreDocument(text="No title here.", id="2", metadata={}),
        StoreDocument(text="Title missing.", id="d3", metadata={"title": "ignored", "year": 2020}),
    ]
    assert count_documents(tmp_path) == 3


def test_beir_join_matches_the_beir_reader(tmp_path: Path) -> None:
    from edgecolbert.sources.beir import iter_corpus

    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "a", "title": " Spaced ", "text": " body "}])
    assert [d.text for d in read_documents(tmp_path)] == [d.full_text for d in iter_corpus(tmp_path)]


def test_beir_reader_and_sources_name_the_same_bad_line(tmp_path: Path) -> None:
    from edgecolbert.errors import DatasetError
    from edgecolbert.sources.beir import iter_corpus

    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "a", "text": "fine"}, '["not an object"]'])
    with pytest.raises(DatasetError, match=r"corpus\.jsonl line 2 should be a JSON object"):
        list(iter_corpus(tmp_path))
    with pytest.raises(SourceError, match=r"corpus\.jsonl line 2 should be a JSON object"):
        list(read_documents(tmp_path))


def test_beir_file_detected_by_id_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", ["", {"_id": 7, "title": "T", "text": "body"}])
    assert list(read_documents(path)) == [StoreDocument(text="T body", id="7", metadata={"title": "T"})]


def test_beir_file_line_without_id_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "1", "text": "a"}, {"text": "no id"}])
    with pytest.raises(SourceError, match=r"corpus\.jsonl line 2 .*'_id'"):
        read_documents(path)


# ---------------------------------------------------------------------------------------------
# Plain JSONL


def test_plain_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"id": 1, "text": "int id"},
            "",
            "   ",
            {"text": "no id"},
            {"id": None, "text": "null id"},
            {"id": "x", "title": "Head", "text": "with title", "metadata": {"tags": ["a", "b"]}},
            {"id": "y", "text": "null metadata", "metadata": None},
        ],
    )

    documents = list(read_documents(path))

    assert documents == [
        StoreDocument(text="int id", id="1"),
        StoreDocument(text="no id", id=None),
        StoreDocument(text="null id", id=None),
        StoreDocument(text="Head with title", id="x", metadata={"tags": ["a", "b"], "title": "Head"}),
        StoreDocument(text="null metadata", id="y"),
    ]
    assert count_documents(path) == 5


@pytest.mark.parametrize("first_key", ["id", "_id"])
def test_each_line_keeps_its_id_under_either_key(tmp_path: Path, first_key: str) -> None:
    other_key = "_id" if first_key == "id" else "id"
    records = [{first_key: "p", "text": "a"}, {other_key: "q", "text": "b"}, {"id": "r", "_id": "r", "text": "c"}]
    path = write_jsonl(tmp_path / "docs.jsonl", records)
    assert [d.id for d in read_documents(path)] == ["p", "q", "r"]


def test_a_line_with_two_different_ids_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", [{"id": "p", "text": "a"}, {"id": "q", "_id": "z", "text": "b"}])
    with pytest.raises(SourceError, match=r"docs\.jsonl line 2 has both '_id' 'z' and 'id' 'q'"):
        read_documents(path)


@pytest.mark.parametrize("beir", [False, True])
def test_one_id_on_two_different_lines_is_refused_before_any_document(tmp_path: Path, beir: bool) -> None:
    key = "_id" if beir else "id"
    records: list[dict[str, Any] | str] = [{key: f"d{i}", "text": f"document {i}"} for i in range(300)]
    records[250] = {key: 7, "text": "first holder of id 7"}
    records.append({key: "7", "text": "another text under the same id"})
    folder = tmp_path / "beir"
    folder.mkdir()
    path = write_jsonl(folder / "corpus.jsonl" if beir else tmp_path / "docs.jsonl", records)
    with pytest.raises(SourceError, match=r"lines 251 and 301 both have the id '7' but different content"):
        read_documents(folder if beir else path)


def test_same_id_with_other_metadata_or_title_is_refused(tmp_path: Path) -> None:
    for changed in ({"metadata": {"lang": "fr"}}, {"title": "T"}):
        path = write_jsonl(tmp_path / "docs.jsonl", [{"id": "a", "text": "t"}, {"id": "a", "text": "t", **changed}])
        with pytest.raises(SourceError, match="lines 1 and 2 both have the id 'a'"):
            read_documents(path)


def test_exact_repeats_of_a_line_are_read_once(tmp_path: Path) -> None:
    line = {"id": "a", "text": "same", "metadata": {"k": 1}}
    path = write_jsonl(tmp_path / "docs.jsonl", [line, {"id": "b", "text": "other"}, line, {"text": "no id"}])
    assert [d.id for d in read_documents(path)] == ["a", "b", None]


def test_beir_reader_refuses_one_id_on_two_different_lines(tmp_path: Path) -> None:
    from edgecolbert.errors import DatasetError
    from edgecolbert.sources.beir import iter_corpus

    same = {"_id": "a", "title": "T", "text": "one"}
    write_jsonl(tmp_path / "corpus.jsonl", [same, {"_id": "b", "text": "two"}, same])
    assert [d.id for d in iter_corpus(tmp_path)] == ["a", "b"]
    write_jsonl(tmp_path / "corpus.jsonl", [same, {"_id": "b", "text": "two"}, {"_id": "a", "text": "one"}])
    with pytest.raises(DatasetError, match="lines 1 and 3 both have the id 'a'"):
        list(iter_corpus(tmp_path))


def test_utf8_bom_and_unicode(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "é", "text": "naïve café ☕"}, ensure_ascii=False).encode())
    assert list(read_documents(path)) == [StoreDocument(text="naïve café ☕", id="é")]


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ('{"id": "3", "text": ', "not valid JSON"),
        ('["a list"]', "should be a JSON object"),
        ('{"id": "3"}', "'text'"),
        ('{"id": "3", "text": 42}', "'text'"),
        ('{"id": "3", "text": "t", "metadata": [1, 2]}', "'metadata'"),
        ('{"id": "3", "text": "t", "metadata": "x"}', "'metadata'"),
        ('{"id": "3", "text": "t", "title": 5}', "'title'"),
        ('{"id": true, "text": "t"}', "'id'"),
        ('{"id": 1.5, "text": "t"}', "'id'"),
        ('{"id": "", "text": "t"}', "'id'"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, complaint: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "text": "fine"}, "", line, {"id": "4", "text": "after"}])
    with pytest.raises(SourceError, match=r"bad\.jsonl line 3 ") as caught:
        list(read_documents(path))
    assert complaint in str(caught.value)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(SourceError, match=r"bad\.jsonl line 2 is not valid UTF-8"):
        list(read_documents(path))


def test_a_bad_last_line_fails_before_the_first_document(tmp_path: Path) -> None:
    records: list[dict[str, Any] | str] = [{"id": str(i), "text": f"document {i}"} for i in range(5000)]
    path = write_jsonl(tmp_path / "big.jsonl", [*records, "{not json"])
    with pytest.raises(SourceError, match="line 5001"):
        read_documents(path)


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    # Reading holds ids, not texts: far less memory than the file's texts take.
    text = "word " * 2000
    path = write_jsonl(tmp_path / "big.jsonl", [{"id": str(i), "text": f"{i} {text}"} for i in range(2000)])
    tracemalloc.start()
    try:
        documents = read_documents(path)
        assert next(documents).id == "0"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < path.stat().st_size / 10
    assert sum(1 for _ in documents) == 1999


def test_empty_jsonl_is_rejected_eagerly(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(SourceError, match="empty"):
        read_documents(path)
    assert count_documents(path) == 0


# ---------------------------------------------------------------------------------------------
# Text files


def make_text_folder(root: Path) -> Path:
    (root / "b" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.txt").write_text("Alpha one.\n\nAlpha two.\n", encoding="utf-8")
    (root / "b" / "guide.md").write_text("# Guide\n\nSome *markdown*.", encoding="utf-8")
    (root / "b" / "deep" / "z.TXT").write_text("Deep file.", encoding="utf-8")
    (root / "b" / "empty.txt").write_text(" \n\n ", encoding="utf-8")
    (root / ".secret.txt").write_text("hidden file", encoding="utf-8")
    (root / ".hidden" / "inside.txt").write_text("hidden folder", encoding="utf-8")
    (root / "paper.pdf").write_bytes(b"%PDF-1.7 not text")
    (root / "data.jsonl").write_text('{"text": "jsonl beside text files is ignored"}\n', encoding="utf-8")
    return root


def test_text_folder(tmp_path: Path) -> None:
    root = make_text_folder(tmp_path)

    documents = list(read_documents(root))

    assert [d.metadata["source"] for d in documents] == ["a.txt", "b/deep/z.TXT", "b/guide.md"]
    assert documents[0] == StoreDocument(
        text="Alpha one.\n\nAlpha two.", id="a.txt#0-22", metadata={"source": "a.txt", "start": 0, "end": 22}
    )
    assert documents[2].text == "# Guide\n\nSome *markdown*."
    assert_passages_are_slices(root, documents)
    assert count_documents(root) is None


def test_unreadable_files_in_a_folder_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good.txt").write_text("Readable text.", encoding="utf-8")
    (tmp_path / "broken.txt").symlink_to(tmp_path / "missing.txt")
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "linked.md").symlink_to(tmp_path / "good.txt")

    with caplog.at_level(logging.WARNING, logger="edgecolbert.sources.paths"):
        documents = list(read_documents(tmp_path))

    assert [d.metadata["source"] for d in documents] == ["good.txt", "linked.md"]
    warnings = sorted(record.getMessage() for record in caplog.records)
    assert warnings == [
        f"Skipped {tmp_path / 'binary.txt'}: it holds NUL bytes: it is a binary file, not text.",
        f"Skipped {tmp_path / 'broken.txt'}: it is a broken symbolic link.",
        f"Skipped {tmp_path / 'pipe.md'}: it is not a regular file (a FIFO, socket, device or the like).",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "good.txt").write_text("Readable text.", encoding="utf-8")
    locked = tmp_path / "locked.txt"
    locked.write_text("secret", encoding="utf-8")
    locked.chmod(0)
    with caplog.at_level(logging.WARNING, logger="edgecolbert.sources.paths"):
        documents = list(read_documents(tmp_path))
    assert [d.metadata["source"] for d in documents] == ["good.txt"]
    assert [record.getMessage() for record in caplog.records] == [
        f"Skipped {locked}: it cannot be read (Permission denied)."
    ]


def test_a_file_that_fails_to_read_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Root reads any file, so the refusal is injected where the file is read.
    (tmp_path / "good.txt").write_text("Readable text.", encoding="utf-8")
    locked = tmp_path / "locked.txt"
    locked.write_text("secret", encoding="utf-8")
    read_text = Path.read_text

    def refuse_locked(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse_locked)
    with caplog.at_level(logging.WARNING, logger="edgecolbert.sources.paths"):
        documents = list(read_documents(tmp_path))
    assert [d.metadata["source"] for d in documents] == ["good.txt"]
    assert [record.getMessage() for record in caplog.records] == [
        f"Skipped {locked}: it cannot be read (Permission denied)."
    ]


def test_a_named_file_that_is_not_regular_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(SourceError, match=r"pipe\.txt is not a regular file"):
        read_documents(tmp_path / "pipe.txt")
    (tmp_path / "broken.jsonl").symlink_to(tmp_path / "missing.jsonl")
    with pytest.raises(SourceError, match=r"broken\.jsonl is a broken symbolic link"):
        read_documents(tmp_path / "broken.jsonl")
    (tmp_path / "binary.txt").write_bytes(b"text\x00more")
    with pytest.raises(SourceError, match=r"binary\.txt holds NUL bytes"):
        read_documents(tmp_path / "binary.txt")


def test_ids_are_deterministic(tmp_path: Path) -> None:
    root = make_text_folder(tmp_path)
    first = [(d.id, d.text) for d in read_documents(root, max_tokens=2)]
    second = [(d.id, d.text) for d in read_documents(root, max_tokens=2)]
    assert first == second
    assert len({doc_id for doc_id, _ in first}) == len(first) > 3


def test_single_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("\n\n  First.\n\n\n\nSecond.  \n", encoding="utf-8")

    documents = list(read_documents(path, max_tokens=1))

    assert [(d.id, d.text) for d in documents] == [("notes.md#4-10", "First."), ("notes.md#14-21", "Second.")]
    assert_passages_are_slices(path, documents)
    assert count_documents(path) is None


def test_paragraphs_are_packed_while_they_fit(tmp_path: Path) -> None:
    paragraphs = [f"Paragraph {i} has five words." for i in range(6)]
    path = tmp_path / "doc.txt"
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")

    documents = list(read_documents(path, max_tokens=10))

    assert [d.text for d in documents] == ["\n\n".join(paragraphs[i : i + 2]) for i in (0, 2, 4)]


def test_long_paragraph_is_cut_at_sentences(tmp_path: Path) -> None:
    sentences = [f"Sentence number {i} ends here." for i in range(8)]
    path = tmp_path / "doc.txt"
    path.write_text(" ".join(sentences) + "\n\nShort tail.", encoding="utf-8")

    documents = list(read_documents(path, max_tokens=12))

    assert [d.text for d in documents] == [" ".join(sentences[i : i + 2]) for i in range(0, 8, 2)] + ["Short tail."]


def test_long_sentence_is_cut_at_words(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text(" ".join(f"w{i}" for i in range(10)), encoding="utf-8")

    documents = list(read_documents(path, max_tokens=4))

    assert [d.text for d in documents] == ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"]


@pytest.mark.parametrize("count_tokens", [count_chars, count_words_plus_specials])
@pytest.mark.parametrize("max_tokens", [3, 8, 40])
def test_passages_respect_max_tokens(tmp_path: Path, count_tokens: Any, max_tokens: int) -> None:
    path = tmp_path / "doc.txt"
    path.write_text(generated_text(random.Random(max_tokens)), encoding="utf-8")

    documents = list(read_documents(path, count_tokens=count_tokens, max_tokens=max_tokens))

    assert len(documents) > 1
    assert max(count_tokens([d.text for d in documents])) <= max_tokens
    assert_passages_are_slices(path, documents)


def test_separator_tokens_are_counted(tmp_path: Path) -> None:
    # Each paragraph counts 2, so two fit by their sum (4), but joined the blank line adds 2 more.
    def count_words_and_breaks(texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + text.count("\n") for text in texts]

    path = tmp_path / "doc.txt"
    path.write_text("one two\n\nthree four\n\nfive six", encoding="utf-8")

    documents = list(read_documents(path, count_tokens=count_words_and_breaks, max_tokens=4))

    assert [d.text for d in documents] == ["one two", "three four", "five six"]


def test_count_tokens_is_called_in_batches(tmp_path: Path) -> None:
    calls: list[int] = []

    def counting(texts: Sequence[str]) -> list[int]:
        calls.append(len(texts))
        return [len(text.split()) for text in texts]

    path = tmp_path / "doc.txt"
    path.write_text("\n\n".join(f"Paragraph {i}." for i in range(100)), encoding="utf-8")

    documents = list(read_documents(path, count_tokens=counting, max_tokens=6))

    assert len(documents) == 34
    # One call for all paragraphs, one to recheck the 33 packed passages (the last holds one paragraph).
    assert calls == [100, 33]


def test_a_character_over_the_limit_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="max_tokens=2 is too small"):
        list(read_documents(path, count_tokens=count_words_plus_specials, max_tokens=2))


def generated_text(rng: random.Random) -> str:
    """Paragraphs of mixed scripts, odd spacing and line endings, a run-on paragraph and one huge word."""
    vocabulary = ["alpha", "βeta", "日本語", "naïve", "e\u0301", "🙂🙂", "x", "long-" * 5, "end.", "wow!", "why?"]
    breaks = ["\n\n", "\n \n", "\r\n\r\n", "\n\n\n\t\n", "\n"]
    paragraphs = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 30))) for _ in range(12)]
    paragraphs.append(" ".join(rng.choice(vocabulary) for _ in range(400)))
    paragraphs.append("H" * 300)
    rng.shuffle(paragraphs)
    pieces = ["\ufeff  "]
    for paragraph in paragraphs:
        pieces += [paragraph, rng.choice(breaks), " " * rng.randint(0, 2)]
    return "".join(pieces)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_tokens", [1, 5, 64])
def test_offsets_reproduce_passages(tmp_path: Path, seed: int, max_tokens: int) -> None:
    text_bytes = generated_text(random.Random(seed)).encode("utf-8")
    if seed == 5:
        text_bytes += b"\xff broken byte"
    path = tmp_path / "doc.txt"
    path.write_bytes(text_bytes)
    text = path.read_text(encoding="utf-8", errors="replace")

    counter = count_chars if seed % 2 else None
    documents = list(read_documents(path, count_tokens=counter, max_tokens=max_tokens * 3))

    assert_passages_are_slices(path, documents)
    spans = [(d.metadata["start"], d.metadata["end"]) for d in documents]
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))
    covered = {i for start, end in spans for i in range(start, end)}
    assert {i for i, char in enumerate(text) if not (char.isspace() or char == "\ufeff")} <= covered


def test_split_passages_of_blank_text() -> None:
    assert split_passages(" \n\n\t", count_chars, 5) == []


# ---------------------------------------------------------------------------------------------
# Paths that are not sources


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"does not exist.*\.jsonl"):
        read_documents(tmp_path / "nope")
    assert count_documents(tmp_path / "nope") is None


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(b"%PDF")
    with pytest.raises(SourceError, match=r"'\.pdf'.*\.txt or \.md"):
        read_documents(path)


def test_empty_text_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n \n", encoding="utf-8")
    with pytest.raises(SourceError, match="empty"):
        read_documents(path)


def test_folder_without_text_files(tmp_path: Path) -> None:
    (tmp_path / "paper.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden.txt").write_text("hidden", encoding="utf-8")
    with pytest.raises(SourceError, match="neither corpus.jsonl nor any .txt"):
        read_documents(tmp_path)


def test_max_tokens_must_be_positive(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("text", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="max_tokens"):
        read_documents(tmp_path, max_tokens=0)


def test_source_error_is_a_value_error() -> None:
    assert issubclass(SourceError, InvalidInputError)
    assert issubclass(SourceError, ValueError)
