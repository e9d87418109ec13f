"""Training data: BEIR and JSONL readers, hard-negative mining, and teacher scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoints import MINILM_DIR, requires_minilm
from edgecolbert import ColBERT
from edgecolbert.errors import TrainingDataError
from edgecolbert.scoring.maxsim import maxsim
from edgecolbert.training import TrainingData, TrainingExample, load_training_data
from edgecolbert.training.examples import write_examples
from edgecolbert.training.negatives import bm25_ranker, fill_negatives, store_ranker
from edgecolbert.training.teacher import attach_teacher_scores

pytest.importorskip("bm25s", reason="negatives are mined with bm25s")

CORPUS = {
    "d1": ("Violins", "the violin has four strings and is played with a bow"),
    "d2": ("", "a viola is a larger violin with a deeper sound and four strings"),
    "d3": ("Comets", "a comet is an icy body whose tail points away from the sun"),
    "d4": ("", "the sun is a star at the centre of the solar system"),
    "d5": ("Glaciers", "a glacier is a slow river of ice carving valleys"),
    "d6": ("", "ice sheets and glaciers store most of the fresh water on earth"),
    "d7": ("", "honeybees collect nectar and make honey in the hive"),
    "d8": ("", "a lighthouse guides ships at night with a rotating lamp"),
}
QUERIES = {"q1": "how many strings does a violin have", "q2": "why does a comet tail point away from the sun"}


def write_beir(folder: Path, qrels: list[tuple[str, str, int]], queries: dict[str, str] | None = None) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in CORPUS.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as handle:
        for query_id, text in (queries or QUERIES).items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    rows = "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels)
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def full_text(doc_id: str) -> str:
    title, text = CORPUS[doc_id]
    return f"{title} {text}".strip() if title else text


# ----------------------------------------------------------------------------- readers


def test_beir_gives_one_example_per_positive_judgment(tmp_path: Path) -> None:
    folder = write_beir(tmp_path, [("q1", "d1", 1), ("q1", "d2", 2), ("q1", "d8", 0), ("q2", "d3", 1)])
    data = load_training_data(folder)
    assert [(ex.query, ex.positive) for ex in data.examples] == [
        (QUERIES["q1"], full_text("d1")),
        (QUERIES["q1"], full_text("d2")),
        (QUERIES["q2"], full_text("d3")),
    ]
    assert data.relevant[QUERIES["q1"]] == {full_text("d1"), full_text("d2")}
    assert full_text("d8") not in data.relevant[QUERIES["q1"]]
    assert len(data.pool) == len(CORPUS)


def test_beir_refuses_judgments_of_unknown_queries_or_documents(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="queries that queries.jsonl lacks.*'q9'"):
        load_training_data(write_beir(tmp_path / "a", [("q9", "d1", 1)]))
    with pytest.raises(TrainingDataError, match="documents that corpus.jsonl lacks.*'d99'"):
        load_training_data(write_beir(tmp_path / "b", [("q1", "d99", 1)]))
    with pytest.raises(TrainingDataError, match="no positive judgment"):
        load_training_data(write_beir(tmp_path / "c", [("q1", "d1", 0)]))
    with pytest.raises(TrainingDataError, match="does not exist"):
        load_training_data(tmp_path / "nowhere")


def test_jsonl_reads_negatives_and_scores(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"query": "violin strings", "positive": "four strings", "negatives": ["a comet"], "scores": [3, -1.5]},
            {"query": "comet tail", "positive": "away from the sun", "negative": "a glacier"},
            {"query": "honey", "positive": "bees make honey"},
        ],
    )
    data = load_training_data(path)
    assert data.examples[0] == TrainingExample("violin strings", "four strings", ("a comet",), (3.0, -1.5))
    assert data.examples[1].negatives == ("a glacier",)
    assert data.examples[2].negatives == () and data.examples[2].scores is None
    assert set(data.pool) == {"four strings", "a comet", "away from the sun", "a glacier", "bees make honey"}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"positive": "p"}, "'query' should be a non-empty string"),
        ({"query": "q", "positive": "  "}, "'positive' should be a non-empty string"),
        ({"query": "q", "positive": "p", "negatives": "n"}, "'negatives' should be a list"),
        ({"query": "q", "positive": "p", "negatives": ["n"], "negative": "m"}, "not both"),
        ({"query": "q", "positive": "p", "negatives": ["n"], "scores": [1.0]}, "'scores' has 1 numbers"),
        ({"query": "q", "positive": "p", "scores": ["high"]}, "finite numbers"),
        ({"query": "q", "positive": "p", "scores": [float("nan")]}, "finite numbers"),
        (["q", "p"], "should be a JSON object"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, record: Any, message: str) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"query": "fine", "positive": "fine"}, record])
    with pytest.raises(TrainingDataError, match=message) as raised:
        load_training_data(path)
    assert "line 2" in str(raised.value)


def test_written_examples_read_back_unchanged(tmp_path: Path) -> None:
    examples = [
        TrainingExample("q one", "p one", ("n1", "n2"), (1.0, 0.5, -0.25)),
        TrainingExample("q two ünïcode", "p two", ("n3",), None),
    ]
    write_examples(tmp_path / "set.jsonl", examples)
    assert list(load_training_data(tmp_path / "set.jsonl").examples) == examples
    assert not (tmp_path / "set.jsonl.partial").exists()


# ----------------------------------------------------------------------------- negatives


def test_bm25_ranks_the_matching_document_first() -> None:
    pool = [full_text(doc_id) for doc_id in CORPUS]
    ranked = bm25_ranker(pool)([QUERIES["q2"]], 3)
    assert ranked[QUERIES["q2"]][0] == full_text("d3")
    assert len(ranked[QUERIES["q2"]]) == 3


def test_mined_negatives_are_never_relevant_and_follow_the_seed(tmp_path: Path) -> None:
    data = load_training_data(write_beir(tmp_path, [("q1", "d1", 1), ("q1", "d2", 1), ("q2", "d3", 1)]))
    ranker = bm25_ranker(data.pool)
    mined = fill_negatives(data, 2, ranker, depth=5, seed=7)
    for example in mined.examples:
        assert len(example.negatives) == 2
        assert not set(example.negatives) & data.relevant[example.query]
        assert set(example.negatives) <= set(data.pool)
    assert fill_negatives(data, 2, ranker, depth=5, seed=7) == mined
    seeds = {fill_negatives(data, 2, ranker, depth=5, seed=seed).examples for seed in range(8)}
    assert len(seeds) > 1


def test_given_negatives_are_kept_and_topped_up() -> None:
    data = TrainingData(
        examples=(
            TrainingExample("violin", "four strings", ("given one",)),
            TrainingExample("comet", "icy tail", ("n1", "n2", "n3"), (1.0, 0.0, 0.1, 0.2)),
        ),
        pool=("four strings", "icy tail", "violin bow", "violin case", "comet dust"),
        relevant={"violin": frozenset({"four strings"}), "comet": frozenset({"icy tail"})},
    )

    def ranker(queries: list[str], k: int) -> dict[str, list[str]]:
        return {
            query: [doc for doc in data.pool if query in doc or doc in ("four strings", "icy tail")]
            for query in queries
        }

    mined = fill_negatives(data, 2, ranker, depth=10)
    assert mined.examples[0].negatives[0] == "given one"
    assert mined.examples[0].negatives[1] in {"violin bow", "violin case"}
    # An example with more negatives than asked keeps the first ones and their scores.
    assert mined.examples[1].negatives == ("n1", "n2")
    assert mined.examples[1].scores == (1.0, 0.0, 0.1)


def test_too_few_candidates_is_a_clear_error(tmp_path: Path) -> None:
    data = load_training_data(write_beir(tmp_path, [("q1", "d1", 1)]))
    with pytest.raises(TrainingDataError, match="non-relevant documents for the query"):
        fill_negatives(data, 3, lambda queries, k: {q: [full_text("d1"), full_text("d2")] for q in queries}, depth=5)
    with pytest.raises(TrainingDataError, match="mining depth"):
        fill_negatives(data, 3, bm25_ranker(data.pool), depth=2)


@requires_minilm
def test_store_first_stage_mines_negatives(tmp_path: Path, model: ColBERT) -> None:
    from edgecolbert.store import EdgeStore

    data = load_training_data(write_beir(tmp_path / "beir", [("q2", "d3", 1)]))
    with EdgeStore(tmp_path / "store", model) as store:
        store.add(list(data.pool))
        mined = fill_negatives(data, 1, store_ranker(store), depth=4, seed=1)
    # The store's BM25 finds only d3 (relevant) and d4 (shares "sun"), so d4 is the one negative.
    assert mined.examples[0].negatives == (full_text("d4"),)


# ----------------------------------------------------------------------------- teacher


def test_teacher_table_supplies_scores_and_names_missing_pairs(tmp_path: Path) -> None:
    examples = [TrainingExample("q", "p", ("n1", "n2"))]
    rows = [{"query": "q", "document": "p", "score": 2.0}, {"query": "q", "document": "n1", "score": 0.5}]
    with pytest.raises(TrainingDataError, match="lacks teacher scores for 1 "):
        attach_teacher_scores(examples, write_jsonl(tmp_path / "partial.jsonl", rows))
    rows.append({"query": "q", "document": "n2", "score": -1})
    scored = attach_teacher_scores(examples, write_jsonl(tmp_path / "full.jsonl", rows))
    assert scored[0].scores == (2.0, 0.5, -1.0)
    with pytest.raises(TrainingDataError, match="finite number"):
        attach_teacher_scores(
            examples, write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "document": "p", "score": "x"}])
        )


@requires_minilm
def test_late_interaction_teacher_scores_are_maxsim(model: ColBERT) -> None:
    examples = [TrainingExample(QUERIES["q1"], full_text("d1"), (full_text("d3"), full_text("d7")))]
    scored = attach_teacher_scores(examples, model.spec.path)
    expected = maxsim(model.encode_query(QUERIES["q1"]), model.encode_documents(list(examples[0].documents)))
    np.testing.assert_allclose(scored[0].scores, expected, rtol=1e-5)


@requires_minilm
def test_cross_encoder_teacher_scores_match_sentence_transformers(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "cross-encoder"
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=1
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if (MINILM_DIR / name).is_file():
            shutil.copy(MINILM_DIR / name, folder / name)
    examples = [TrainingExample(QUERIES["q2"], full_text("d3"), (full_text("d4"),))]
    scored = attach_teacher_scores(examples, folder, device="cpu")
    expected = CrossEncoder(str(folder), device="cpu").predict([(QUERIES["q2"], doc) for doc in examples[0].documents])
    np.testing.assert_allclose(scored[0].scores, expected, rtol=1e-5)
