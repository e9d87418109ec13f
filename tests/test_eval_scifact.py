"""The evaluation harness on SciFact with real weights: the MaxSim rerank must beat the store's BM25.

Uses all-MiniLM-L6-v2 wrapped as a late-interaction checkpoint (model-format.md section 6) and
needs ../shared/data/scifact. Encoding all 5,183 abstracts takes about six minutes on two cores,
so the test evaluates every judged test query against a reduced corpus: every judged document
plus the first distractors of corpus.jsonl, 1,500 documents in all (about two minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkpoints import MINILM_DIR, SHARED, requires_minilm
from edgecolbert.cli import main
from edgecolbert.encoding.convert import from_sentence_transformer
from edgecolbert.evaluation import per_query_path

pytest.importorskip("pytrec_eval", reason="evaluation scores with pytrec-eval-terrier")

SCIFACT = SHARED / "data" / "scifact"
CORPUS_SIZE = 1500


def _reduced_scifact(target: Path) -> Path:
    """SciFact's queries and test judgments over every judged document and the first distractors."""
    (target / "qrels").mkdir(parents=True)
    qrels = (SCIFACT / "qrels" / "test.tsv").read_text(encoding="utf-8")
    judged = {line.split("\t")[1] for line in qrels.splitlines()[1:] if line.strip()}
    kept = []
    distractors = CORPUS_SIZE - len(judged)
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as corpus:
        for line in corpus:
            if json.loads(line)["_id"] in judged:
                kept.append(line)
            elif distractors > 0:
                kept.append(line)
                distractors -= 1
    (target / "corpus.jsonl").write_text("".join(kept), encoding="utf-8")
    (target / "queries.jsonl").write_text((SCIFACT / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    (target / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return target


@requires_minilm
@pytest.mark.slow
@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="../shared/data/scifact is absent")
def test_maxsim_rerank_beats_bm25_on_scifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert MINILM_DIR is not None
    checkpoint = from_sentence_transformer(MINILM_DIR, tmp_path / "minilm-colbert")
    dataset = _reduced_scifact(tmp_path / "scifact")
    out = tmp_path / "scifact.json"
    code = main(
        ["eval", "--dataset", str(dataset), "--model", str(checkpoint), "--cache-dir", str(tmp_path / "cache"),
         "--json", str(out), "--no-progress"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["n_queries"] == 300 and report["top_k"] == 100
    assert report["corpus_size"] == report["encoded_documents"] == CORPUS_SIZE
    first, reranked = report["first_stage"]["ndcg@10"], report["reranked"]["ndcg@10"]
    assert 0.5 < first < 0.9, report
    assert 0.55 < reranked < 0.95, report
    assert reranked > first, report
    assert report["reranked"]["mrr@10"] > report["first_stage"]["mrr@10"], report
    rows = per_query_path(out).read_text().splitlines()
    assert len(rows) == 300
