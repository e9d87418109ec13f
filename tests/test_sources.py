"""Reading documents to index from BEIR folders, JSONL files and folders of text files."""

from __future__ import annotations

import json
import random
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
    documents = read_documents(path)
    assert next(documents).id == "1"
    with pytest.raises(SourceError, match=r"corpus\.jsonl line 2 .*'_id'"):
        next(documents)


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


def test_detection_is_per_file_from_first_line(tmp_path: Path) -> None:
    # Only the first record decides; a later `_id` in a plain file is just an unknown key.
    path = write_jsonl(tmp_path / "docs.jsonl", [{"id": "p", "text": "a"}, {"_id": "q", "text": "b"}])
    assert [d.id for d in read_documents(path)] == ["p", None]


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


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    # A broken last line proves the first document came out before the file was read to its end.
    records: list[dict[str, Any] | str] = [{"id": str(i), "text": f"document {i}"} for i in range(5000)]
    path = write_jsonl(tmp_path / "big.jsonl", [*records, "{not json"])

    documents = read_documents(path)

    assert next(documents) == StoreDocument(text="document 0", id="0")
    assert next(documents).id == "1"
    with pytest.raises(SourceError, match="line 5001"):
        list(documents)


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
