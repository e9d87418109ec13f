"""What an evaluation returns and writes: the summary (JSON), per-query rows (JSON Lines), a table."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edgecolbert.evaluation.metrics import METRICS

PER_QUERY_SUFFIX = ".per_query.jsonl"


class Metrics(BaseModel):
    """The three metrics, serialised under their usual names (``ndcg@10``, ``recall@100``, ``mrr@10``)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True, frozen=True)

    ndcg_at_10: float = Field(alias="ndcg@10")
    recall_at_100: float = Field(alias="recall@100")
    mrr_at_10: float = Field(alias="mrr@10")

    @classmethod
    def from_mapping(cls, values: dict[str, float]) -> Metrics:
        return cls.model_validate({name: values[name] for name in METRICS})

    def minus(self, other: Metrics) -> Metrics:
        return Metrics(
            ndcg_at_10=self.ndcg_at_10 - other.ndcg_at_10,
            recall_at_100=self.recall_at_100 - other.recall_at_100,
            mrr_at_10=self.mrr_at_10 - other.mrr_at_10,
        )


class QueryResult(BaseModel):
    """One judged query: its metrics before and after the rerank, and where its first relevant document stood."""

    model_config = ConfigDict(frozen=True)

    query_id: str
    relevant: int = Field(description="documents judged relevant (grade > 0)")
    first_stage: Metrics
    reranked: Metrics
    difference: Metrics
    first_relevant_rank_first_stage: int | None = Field(description="1-based; None when not in the top k")
    first_relevant_rank_reranked: int | None


class EvalReport(BaseModel):
    """The outcome of :func:`edgecolbert.evaluation.evaluate`; ``to_json()`` is the documented file format.

    ``difference`` is reranked minus first stage. ``seconds`` is the whole run's wall time (loading,
    any encoding, all queries); ``index_seconds`` the part spent indexing the corpus (near 0 when the
    vectors were cached) and ``query_seconds`` the part spent ranking the queries.
    """

    model_config = ConfigDict(frozen=True)

    dataset: str
    model: str
    split: str
    n_queries: int
    top_k: int
    first_stage: Metrics
    reranked: Metrics
    difference: Metrics
    seconds: float
    first_stage_method: str
    corpus_size: int
    corpus_hash: str
    encoded_documents: int = Field(description="documents encoded by this run; 0 when the cache held them all")
    index_seconds: float
    query_seconds: float
    store: str = Field(description="the cached embedded store holding the corpus vectors")
    backend: str = Field(default="torch", description="the encoder's runtime: torch or onnx")
    quantize: str | None = Field(default=None, description="int8 when the ONNX weights were quantized")
    pool_factor: int = Field(default=1, description="token pooling of the document vectors (1: none)")
    per_query: list[QueryResult] = Field(default_factory=list, exclude=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def write(self, path: str | Path) -> Path:
        """Write the summary to ``path`` and the per-query rows beside it; returns the per-query file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        rows = per_query_path(path)
        with rows.open("w", encoding="utf-8") as handle:
            for row in self.per_query:
                handle.write(row.model_dump_json() + "\n")
        return rows

    def table(self) -> str:
        """A plain-text summary for people."""
        header = f"{'':<14}" + "".join(f"{name:>12}" for name in METRICS)
        lines = [
            f"{self.dataset} ({self.split}): {self.n_queries} judged queries, {self.corpus_size} documents",
            f"model {self.model} ({self._encoder()}); {self.first_stage_method} top {self.top_k} reranked by MaxSim",
            header,
        ]
        for label, metrics in (("first stage", self.first_stage), ("reranked", self.reranked)):
            lines.append(f"{label:<14}" + "".join(f"{value:>12.4f}" for value in _values(metrics)))
        lines.append(f"{'difference':<14}" + "".join(f"{value:>+12.4f}" for value in _values(self.difference)))
        lines.append(
            f"{self.seconds:.1f} s in all ({self.index_seconds:.1f} s indexing, {self.encoded_documents} documents "
            f"encoded; {self.query_seconds:.1f} s for the queries)"
        )
        return "\n".join(lines)

    def _encoder(self) -> str:
        parts = [self.backend, self.quantize or "fp32"]
        if self.pool_factor > 1:
            parts.append(f"pool factor {self.pool_factor}")
        return ", ".join(parts)


def per_query_path(path: str | Path) -> Path:
    """Where the per-query rows of a summary written to ``path`` go: ``results.json`` -> ``results.per_query.jsonl``."""
    path = Path(path)
    return path.with_name(path.stem + PER_QUERY_SUFFIX) if path.suffix else path.with_name(path.name + PER_QUERY_SUFFIX)


def _values(metrics: Metrics) -> list[float]:
    dumped = metrics.model_dump(by_alias=True)
    return [dumped[name] for name in METRICS]
