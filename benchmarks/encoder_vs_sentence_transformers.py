"""Document encoding speed and parity: edgecolbert vs sentence-transformers MultiVectorEncoder.

Encodes the first N SciFact documents with a random-weight checkpoint of the exact
mxbai-edge-colbert-v0 shape (speed does not depend on weights) three ways, in one run on one
machine:

  ours     edgecolbert.ColBERT.encode_documents
  compiled the same with compile=True (--compile; its first pass, which compiles, is untimed)
  st       sentence_transformers.MultiVectorEncoder.encode_document
  ceiling  the bare backbone forward on the same length-sorted batches, tokenized beforehand

then checks that ours and sentence-transformers produce the same vectors and MaxSim scores.

    python benchmarks/encoder_vs_sentence_transformers.py --docs 300 --threads 2 [--compile] --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from benchkit import SCIFACT, ForeignCpu, cached_checkpoint, cpu_model, prepare_run, require_shared

import edgecolbert
from edgecolbert import ColBERT
from edgecolbert.sources.beir import iter_corpus, load_qrels, load_queries

# --------------------------------------------------------------------------- inputs


def load_documents(n: int) -> list[str]:
    return [doc.full_text for doc in islice(iter_corpus(SCIFACT), n)]


def load_test_queries(n: int) -> list[str]:
    queries = load_queries(SCIFACT)
    return [queries[qid] for qid in load_qrels(SCIFACT, "test") if qid in queries][:n]


# --------------------------------------------------------------------------- contenders


def wall_clock(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def encode_ours(model: ColBERT, docs: list[str], batch_size: int) -> Callable[[], float]:
    return wall_clock(lambda: model.encode_documents(docs, batch_size=batch_size))


def encode_st(st_model: Any, docs: list[str], batch_size: int) -> Callable[[], float]:
    return wall_clock(
        lambda: st_model.encode_document(docs, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    )


def backbone_only(model: ColBERT, docs: list[str], batch_size: int) -> Callable[[], float]:
    """A pass over the backbone alone, timing only its forward calls (inputs are ready beforehand)."""
    sequences, _ = model.tokenizer.token_ids(docs, "document")
    order = np.argsort([-len(ids) for ids in sequences], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        batch = model.tokenizer.pad([sequences[i] for i in order[start : start + batch_size]], "document")
        batches.append((torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)))

    def run() -> float:
        seconds = 0.0
        with torch.inference_mode():
            for input_ids, attention_mask in batches:
                start = time.perf_counter()
                model.engine.backbone(input_ids=input_ids, attention_mask=attention_mask)
                seconds += time.perf_counter() - start
        return seconds

    return run


def measure(runs: dict[str, Callable[[], float]], n_docs: int, repeats: int) -> dict[str, list[float]]:
    """docs/s per contender per repeat, after one warm-up pass each."""
    for fn in runs.values():
        fn()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    # Interleaved so every contender sees the same stretch of a noisy shared machine.
    for _ in range(repeats):
        for name, fn in runs.items():
            rates[name].append(n_docs / fn())
    return rates


# --------------------------------------------------------------------------- parity


def vector_parity(ours: list[np.ndarray], theirs: list[np.ndarray]) -> dict[str, float | int]:
    """Count mismatched kept-token counts, and the lowest per-token cosine among the texts that match."""
    mismatches = 0
    lowest = 1.0
    for a, b in zip(ours, theirs, strict=True):
        if a.shape != b.shape:
            mismatches += 1
            continue
        cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        lowest = min(lowest, float(cosines.min()))
    return {"texts": len(ours), "count_mismatches": mismatches, "min_token_cosine": lowest}


def parity(model: ColBERT, st_model: Any, docs: list[str], queries: list[str], batch_size: int) -> dict[str, Any]:
    our_docs = model.encode_documents(docs, batch_size=batch_size)
    our_queries = model.encode_queries(queries)
    st_docs = st_model.encode_document(docs, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    st_queries = st_model.encode_query(queries, convert_to_numpy=True, show_progress_bar=False)

    ours_scores = edgecolbert.maxsim(our_queries, our_docs)
    st_scores = st_model.similarity(st_queries, st_docs).float().numpy()
    relative = np.abs(ours_scores - st_scores) / np.maximum(np.abs(st_scores), 1e-6)
    return {
        "documents": vector_parity(list(our_docs), list(st_docs)),
        "queries": vector_parity(list(our_queries), list(st_queries)),
        "maxsim_shape": list(ours_scores.shape),
        "maxsim_max_relative_diff": float(relative.max()),
    }


# --------------------------------------------------------------------------- report


def machine_info(threads: int) -> dict[str, Any]:
    cpu = cpu_model()
    import sentence_transformers
    import transformers

    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "edgecolbert": edgecolbert.__version__,
        "python": platform.python_version(),
    }


def settings(args: argparse.Namespace, model: ColBERT, path: Path, docs: list[str], queries: list[str]) -> dict:
    sequences, truncated = model.tokenizer.token_ids(docs, "document")
    return {
        "docs": len(docs),
        "queries": len(queries),
        "shape": args.shape,
        "checkpoint": str(path),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "document_length": model.document_length,
        "mean_doc_tokens": float(np.mean([len(ids) for ids in sequences])),
        "truncated_docs": truncated,
    }


def summarize(rates: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        name: {
            "median_docs_per_s": medians[name],
            "runs_docs_per_s": rates[name],
            "ours_over_this": medians["ours"] / medians[name],
        }
        for name in rates
    }


def print_report(report: dict[str, Any]) -> None:
    m, s = report["machine"], report["settings"]
    print(f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, {m['torch_threads']} threads")
    if report["foreign_cpu_share"] is not None:
        print(f"other processes used {report['foreign_cpu_share']:.0%} of all CPU time during the speed passes")
    print(
        f"settings: {s['docs']} SciFact documents ({s['mean_doc_tokens']:.0f} tokens on average, "
        f"{s['truncated_docs']} truncated at {s['document_length']}), shape {s['shape']}, "
        f"batch size {s['batch_size']}, {s['repeats']} timed repeats"
    )
    print()
    print(f"{'contender':<10} {'median docs/s':>14} {'min-max':>15} {'ours/this':>10}")
    for name, row in report["speed"].items():
        spread = f"{min(row['runs_docs_per_s']):.1f}-{max(row['runs_docs_per_s']):.1f}"
        print(f"{name:<10} {row['median_docs_per_s']:>14.1f} {spread:>15} {row['ours_over_this']:>10.3f}")
    p = report["parity"]
    print()
    for what in ("documents", "queries"):
        row = p[what]
        print(
            f"parity {what:<9}: {row['count_mismatches']} of {row['texts']} kept-token counts differ, "
            f"min per-token cosine {row['min_token_cosine']:.7f}"
        )
    shape = "x".join(str(n) for n in p["maxsim_shape"])
    print(f"parity MaxSim   : max relative difference {p['maxsim_max_relative_diff']:.2e} over {shape} scores")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300, help="first N SciFact documents (default 300)")
    parser.add_argument("--shape", choices=("17m", "32m"), default="17m")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per contender (default 3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--queries", type=int, default=50, help="SciFact test queries for parity (default 50)")
    parser.add_argument("--compile", action="store_true", help="add edgecolbert with compile=True as a contender")
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_shared()
    prepare_run(args.threads)
    from sentence_transformers import MultiVectorEncoder

    path = cached_checkpoint(args.shape)
    docs = load_documents(args.docs)
    queries = load_test_queries(args.queries)
    model = ColBERT.from_pretrained(path, device="cpu")
    st_model = MultiVectorEncoder(str(path), device="cpu")

    runs = {
        "ours": encode_ours(model, docs, args.batch_size),
        "st": encode_st(st_model, docs, args.batch_size),
        "ceiling": backbone_only(model, docs, args.batch_size),
    }
    if args.compile:
        compiled = ColBERT.from_pretrained(path, device="cpu", compile=True)
        runs["compiled"] = encode_ours(compiled, docs, args.batch_size)
    with ForeignCpu() as foreign:
        speed = summarize(measure(runs, len(docs), args.repeats))
    report = {
        "machine": machine_info(args.threads),
        "settings": settings(args, model, path, docs, queries),
        "speed": speed,
        "foreign_cpu_share": foreign.share,
        "parity": parity(model, st_model, docs, queries, args.batch_size),
    }
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
