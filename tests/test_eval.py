"""The evaluation harness on a small collection this module writes: metrics, judged-query rules, cache, outputs, CLI."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, InvalidInputError
from edgecolbert.cli import main
from edgecolbert.errors import DatasetError, ModelMismatchError
from edgecolbert.evaluation import (
    CACHE_ENV_VAR,
    METRICS,
    EvalReport,
    evaluate,
    load_collection,
    per_query_metrics,
    per_query_path,
    ranked_run,
)
from edgecolbert.scoring.muvera import FdeParams
from edgecolbert.store import EdgeStore
from store_fixtures import count_query_encodings

pytrec_eval = pytest.importorskip("pytrec_eval", reason="evaluation scores with pytrec-eval-terrier")

REQUIRED_KEYS = ["dataset", "model", "split", "n_queries", "top_k", "first_stage", "reranked", "difference", "seconds"]

TOPICS = {
    "violin": "the violin has four strings and is played with a bow",
    "comet": "a comet is an icy body whose tail points away from the sun",
    "glacier": "a glacier is a slow river of ice carving valleys in mountains",
    "volcano": "a volcano erupts molten lava and ash from the crust",
    "honeybee": "the honeybee collects nectar and makes honey in the hive",
    "lighthouse": "a lighthouse guides ships at night with a rotating lamp",
}

# query id -> (text, {doc id: grade}); graded judgments, a grade-0-only query and a query with no match.
QUERIES = {
    "q-violin": ("how is a violin played with a bow", {"violin-0": 2, "violin-1": 1, "comet-0": 0}),
    "q-comet": ("why does a comet tail point away from the sun", {"comet-0": 1, "comet-2": 2}),
    "q-glacier": ("glacier ice carving mountain valleys", {"glacier-1": 1}),
    "q-honeybee": ("where does the honeybee make honey", {"honeybee-3": 3, "honeybee-0": 1, "violin-2": 0}),
    "q-nomatch": ("zyxwv qqqq", {"lighthouse-0": 1}),
    "q-zero-only": ("volcano lava and ash", {"volcano-0": 0, "volcano-1": 0}),
}
UNJUDGED_QUERY = ("q-unjudged", "a lighthouse for ships at night")
JUDGED = ["q-violin", "q-comet", "q-glacier", "q-honeybee", "q-nomatch"]
DOCS_PER_TOPIC = 4


def documents() -> list[dict[str, str]]:
    rows = []
    for topic, sentence in TOPICS.items():
        for i in range(DOCS_PER_TOPIC):
            rows.append({"_id": f"{topic}-{i}", "title": f"{topic} note {i}", "text": f"{sentence}; variant {i}."})
    return rows


def write_collection(folder: Path, *, split: str = "test") -> Path:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv (with header) under ``folder``."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / "corpus.jsonl", documents())
    queries = [{"_id": qid, "text": text} for qid, (text, _) in QUERIES.items()]
    queries.append({"_id": UNJUDGED_QUERY[0], "text": UNJUDGED_QUERY[1]})
    _write_jsonl(folder / "queries.jsonl", queries)
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{qid}\t{doc}\t{grade}" for qid, (_, grades) in QUERIES.items() for doc, grade in grades.items()]
    # Judged, but absent from queries.jsonl: left out with a warning.
    lines.append("q-missing\tcomet-1\t1")
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def qrels() -> dict[str, dict[str, int]]:
    return {qid: dict(grades) for qid, (_, grades) in QUERIES.items() if qid in JUDGED}


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


# ---- metrics, checked by hand ------------------------------------------------------------------


def test_mrr_at_10_counts_nothing_below_rank_10() -> None:
    ranking = [f"d{i}" for i in range(1, 21)]
    judgments = {"deep": {"d11": 1}, "third": {"d3": 1, "d15": 1}}
    results = per_query_metrics(judgments, ranked_run({"deep": ranking, "third": ranking}))
    assert results["deep"]["mrr@10"] == 0.0
    assert results["deep"]["recall@100"] == 1.0
    assert results["third"]["mrr@10"] == pytest.approx(1 / 3)
    # The pitfall the truncation avoids: trec_eval's recip_rank has no cutoff.
    untruncated = pytrec_eval.RelevanceEvaluator(judgments, {"recip_rank"}).evaluate(ranked_run({"deep": ranking}))
    assert untruncated["deep"]["recip_rank"] == pytest.approx(1 / 11)


def test_graded_ndcg_uses_the_grades_as_gains() -> None:
    # trec_eval's NDCG: gain = grade, discount log2(rank + 1).
    results = per_query_metrics({"q": {"a": 2, "b": 1, "c": 0}}, ranked_run({"q": ["c", "b", "a"]}))
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert results["q"]["ndcg@10"] == pytest.approx(dcg / ideal)
    assert results["q"]["mrr@10"] == pytest.approx(1 / 2)


def test_the_ranking_order_is_kept_even_where_trec_eval_would_break_ties() -> None:
    # Raw tied scores would let trec_eval reorder by document id ("z" before "a"); ranks keep our order.
    run = ranked_run({"q": ["a", "z"]})
    assert run["q"]["a"] > run["q"]["z"]
    assert per_query_metrics({"q": {"a": 1}}, run)["q"]["mrr@10"] == 1.0


def test_a_query_the_run_left_empty_scores_zero_and_still_counts() -> None:
    results = per_query_metrics({"q": {"a": 1}, "r": {"b": 1}}, ranked_run({"q": ["a"]}))
    assert set(results) == {"q", "r"}
    assert results["r"] == {name: 0.0 for name in METRICS}


# ---- the dataset ---------------------------------------------------------------------------------


def test_only_queries_with_a_positive_judgment_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edgecolbert"):
        collection = load_collection(write_collection(tmp_path / "data"))
    assert list(collection.queries) == JUDGED
    assert collection.qrels == qrels()
    assert collection.corpus_size == len(documents())
    assert "q-missing" in caplog.text


def test_max_queries_keeps_the_first_judged_queries(tmp_path: Path) -> None:
    assert list(load_collection(write_collection(tmp_path / "data"), max_queries=2).queries) == JUDGED[:2]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{not json\n'), "line 2"),
        (lambda folder: (folder / "corpus.jsonl").write_text('{"_id": "a"}\n'), "lacks '_id' or 'text'"),
        (lambda folder: (folder / "corpus.jsonl").write_text(""), "no documents"),
        (
            lambda folder: (folder / "corpus.jsonl").write_text(
                '{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n'
            ),
            "lines 1 and 2 both have the id 'a' but different content",
        ),
        (lambda folder: (folder / "queries.jsonl").unlink(), "queries.jsonl does not exist"),
        (lambda folder: (folder / "qrels" / "test.tsv").write_text("a\tb\tscore\nq-violin\tviolin-0\n"), "row 2"),
        (lambda folder: (folder / "qrels" / "test.tsv").write_text("q-violin\tviolin-0\t1\nq\td\thigh\n"), "'high'"),
        (
            lambda folder: (folder / "qrels" / "test.tsv").write_text("q-violin\tviolin-0\t0\n"),
            "no query with a positive",
        ),
    ],
)
def test_a_malformed_dataset_is_named_before_any_encoding(tmp_path: Path, damage: Any, message: str) -> None:
    folder = write_collection(tmp_path / "data")
    damage(folder)
    with pytest.raises(DatasetError, match=message):
        load_collection(folder)


def test_a_missing_split_lists_the_available_ones(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "data")
    with pytest.raises(DatasetError, match="split 'dev'.*available splits: test"):
        load_collection(folder, "dev")


# ---- the harness ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> tuple[EvalReport, Path]:
    root = tmp_path_factory.mktemp("eval")
    folder = write_collection(root / "data")
    return evaluate(folder, model, top_k=5, cache_dir=root / "cache"), folder


@requires_minilm
def test_metrics_equal_pytrec_eval_on_the_same_rankings(evaluated: tuple[EvalReport, Path], model: ColBERT) -> None:
    report, _ = evaluated
    first, reranked = _rankings(report, model, JUDGED)
    for label, rankings in (("first_stage", first), ("reranked", reranked)):
        run = {qid: {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)} for qid, docs in rankings.items()}
        full = pytrec_eval.RelevanceEvaluator(qrels(), {"ndcg_cut.10", "recall.100"}).evaluate(run)
        top10 = {
            qid: {doc: score for doc, score in scores.items() if score > len(scores) - 11}
            for qid, scores in run.items()
        }
        rr = pytrec_eval.RelevanceEvaluator(qrels(), {"recip_rank"}).evaluate(top10)
        expected = {
            "ndcg@10": sum(full[q]["ndcg_cut_10"] for q in full) / len(JUDGED),
            "recall@100": sum(full[q]["recall_100"] for q in full) / len(JUDGED),
            "mrr@10": sum(rr[q]["recip_rank"] for q in rr) / len(JUDGED),
        }
        assert getattr(report, label).model_dump(by_alias=True) == pytest.approx(expected)


@requires_minilm
def test_the_rerank_orders_exactly_the_first_stage_top_k(evaluated: tuple[EvalReport, Path], model: ColBERT) -> None:
    report, _ = evaluated
    first, reranked = _rankings(report, model, JUDGED)
    assert any(first[qid] for qid in JUDGED)
    for qid in JUDGED:
        assert sorted(first[qid]) == sorted(reranked[qid])
        assert len(first[qid]) <= report.top_k
    assert first["q-nomatch"] == []
    # Same candidates, so the recall at the candidate depth cannot move.
    assert report.difference.recall_at_100 == 0.0


@requires_minilm
def test_the_report_counts_judged_queries_and_differences(evaluated: tuple[EvalReport, Path]) -> None:
    report, folder = evaluated
    assert report.n_queries == len(JUDGED) == len(report.per_query)
    assert [row.query_id for row in report.per_query] == JUDGED
    assert report.top_k == 5 and report.split == "test" and report.dataset == str(folder)
    assert report.corpus_size == len(documents()) == report.encoded_documents
    after, before, difference = (
        m.model_dump(by_alias=True) for m in (report.reranked, report.first_stage, report.difference)
    )
    assert difference == pytest.approx({name: after[name] - before[name] for name in METRICS})
    nomatch = next(row for row in report.per_query if row.query_id == "q-nomatch")
    assert nomatch.first_stage.ndcg_at_10 == 0.0 and nomatch.first_relevant_rank_first_stage is None
    honeybee = next(row for row in report.per_query if row.query_id == "q-honeybee")
    assert honeybee.relevant == 2  # grade 0 judgments are not relevant


@pytest.mark.slow
@requires_minilm
def test_a_second_run_encodes_no_document(tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_collection(tmp_path / "data")
    first = evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache")
    encoded = _count_encoded(model, monkeypatch)
    second = evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache")
    assert encoded == [] and second.encoded_documents == 0
    assert second.store == first.store
    assert second.first_stage == first.first_stage and second.reranked == first.reranked


@pytest.mark.slow
@requires_minilm
def test_another_corpus_or_model_gets_its_own_store(tmp_path: Path, model: ColBERT, other_model: ColBERT) -> None:
    folder = write_collection(tmp_path / "data")
    base = evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache")
    other = evaluate(folder, other_model, top_k=5, cache_dir=tmp_path / "cache")
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "extra", "title": "", "text": "one more document"}) + "\n")
    edited = evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache")
    assert len({base.store, other.store, edited.store}) == 3
    assert other.encoded_documents == len(documents()) and edited.encoded_documents == len(documents()) + 1


@pytest.mark.slow
@requires_minilm
def test_an_interrupted_run_resumes_where_it_stopped(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_collection(tmp_path / "data")
    real = model.encode_documents
    calls: list[int] = []

    def fail_on_the_third_batch(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(texts, **kwargs)

    monkeypatch.setattr(model, "encode_documents", fail_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache", write_batch_size=8)
    monkeypatch.undo()
    encoded = _count_encoded(model, monkeypatch)
    resumed = evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache", write_batch_size=8)
    assert len(encoded) == resumed.encoded_documents == len(documents()) - 16
    assert resumed.n_queries == len(JUDGED)


@requires_minilm
def test_the_cache_folder_comes_from_the_environment(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "from-env"))
    report = evaluate(write_collection(tmp_path / "data"), model, top_k=3)
    assert Path(report.store).parent == tmp_path / "from-env"


@requires_minilm
def test_bad_arguments_are_refused_before_loading_anything(tmp_path: Path, model: ColBERT) -> None:
    folder = write_collection(tmp_path / "data")
    for kwargs in ({"top_k": 0}, {"max_queries": 0}, {"first_stage": "dense"}, {"write_batch_size": -1}):
        with pytest.raises(InvalidInputError):
            evaluate(folder, model, cache_dir=tmp_path / "cache", **kwargs)
    assert not (tmp_path / "cache").exists()


# ---- outputs and the command line -----------------------------------------------------------------


@requires_minilm
def test_the_json_summary_and_per_query_rows(
    tmp_path: Path, model: ColBERT, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_collection(tmp_path / "data")
    out = tmp_path / "out" / "results.json"
    code = main(["eval", "--dataset", str(folder), "--model", model.name, "--top-k", "5", "--json", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "first stage" in printed and "reranked" in printed and "difference" in printed
    summary = json.loads(out.read_text())
    assert list(summary)[: len(REQUIRED_KEYS)] == REQUIRED_KEYS
    for part in ("first_stage", "reranked", "difference"):
        assert list(summary[part]) == list(METRICS) and all(isinstance(v, float) for v in summary[part].values())
    assert summary["n_queries"] == len(JUDGED) and summary["top_k"] == 5 and summary["split"] == "test"
    assert summary["model"] == str(Path(model.name).resolve())
    rows = [json.loads(line) for line in per_query_path(out).read_text().splitlines()]
    assert per_query_path(out) == out.with_name("results.per_query.jsonl")
    assert [row["query_id"] for row in rows] == JUDGED
    assert sum(row["reranked"]["ndcg@10"] for row in rows) / len(rows) == pytest.approx(summary["reranked"]["ndcg@10"])
    assert EvalReport.model_validate(summary).reranked.ndcg_at_10 == summary["reranked"]["ndcg@10"]


@requires_minilm
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "dev"], "available splits: test"),
        (["--top-k", "0"], "top_k must be a positive integer"),
        (["--max-queries", "-3"], "max_queries must be a positive integer"),
    ],
)
def test_cli_errors_exit_2_with_a_message(
    tmp_path: Path, model: ColBERT, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    folder = write_collection(tmp_path / "data")
    base = ["eval", "--dataset", str(folder), "--model", model.name, "--cache-dir", str(tmp_path / "cache")]
    assert main([*base, *args, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_cli_names_a_malformed_or_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_collection(tmp_path / "data")
    (folder / "queries.jsonl").write_text('{"_id": "q-violin", "text": "violin"}\n[1, 2]\n')
    assert main(["eval", "--dataset", str(folder), "--no-progress"]) == 2
    assert "queries.jsonl line 2" in capsys.readouterr().err
    assert main(["eval", "--dataset", str(tmp_path / "absent"), "--no-progress"]) == 2
    assert "is not a folder" in capsys.readouterr().err


# ---- helpers ---------------------------------------------------------------------------------------


def _rankings(
    report: EvalReport, model: ColBERT, query_ids: list[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Both rankings again, straight from the cached store, to check the report against."""
    texts = {qid: QUERIES[qid][0] for qid in query_ids}
    with EdgeStore(report.store, model) as store:
        first = {
            qid: [hit.id for hit in store.search_first_stage(text, top_k=report.top_k)] for qid, text in texts.items()
        }
        reranked = {qid: [hit.id for hit in store.rerank(texts[qid], ids)] if ids else [] for qid, ids in first.items()}
    return first, reranked


def _count_encoded(model: ColBERT, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    encoded: list[str] = []
    real = model.encode_documents

    def counting(texts: list[str], **kwargs: Any) -> Any:
        encoded.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(model, "encode_documents", counting)
    return encoded


@requires_minilm
def test_each_query_is_encoded_at_most_once(tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_collection(tmp_path / "data")
    judged = [text for qid, (text, _) in QUERIES.items() if qid in JUDGED]
    evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache")
    encoded = count_query_encodings(model, monkeypatch)
    for stage in ("bm25", "muvera", "hybrid-muvera"):
        evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache", first_stage=stage)
        # The MUVERA stages and the MaxSim rerank share one encoding; BM25 leaves the encoding to the rerank,
        # which a query without candidates (q-nomatch) never reaches.
        assert sorted(encoded) == sorted(judged if stage != "bm25" else set(judged) - {QUERIES["q-nomatch"][0]})
        encoded.clear()


@requires_minilm
def test_muvera_first_stages_reuse_the_cached_corpus_vectors(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_collection(tmp_path / "data")
    bm25 = evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache")
    encoded = _count_encoded(model, monkeypatch)
    reports = {
        stage: evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache", first_stage=stage)
        for stage in ("muvera", "hybrid-muvera")
    }
    assert encoded == []
    for stage, report in reports.items():
        assert report.first_stage_method == stage and report.store == bm25.store
        assert report.encoded_documents == 0 and report.n_queries == bm25.n_queries
    with EdgeStore(bm25.store, model) as store:
        assert store.schema.muvera == FdeParams().to_dict() and store.schema.muvera_complete
    with pytest.raises(ModelMismatchError, match="muvera"):
        evaluate(folder, model, top_k=5, cache_dir=tmp_path / "cache", first_stage="muvera", muvera=FdeParams(seed=1))
    assert main(["eval", "--dataset", str(folder), "--first-stage", "hybrid-muvera", "--cache-dir",
                 str(tmp_path / "cache"), "--model", model.name, "--top-k", "5", "--no-progress"]) == 0  # fmt: skip
