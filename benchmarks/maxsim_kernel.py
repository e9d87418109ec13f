"""MaxSim kernel speed against the matrix product it cannot beat and a padded einsum.

    python benchmarks/maxsim_kernel.py [--candidates 100 1000] [--doc-tokens 300] [--query-tokens 32] [--dim 48]

Three contenders score one query against packed candidates, interleaved per repeat so they
share machine noise:
  edgecolbert  edgecolbert.scoring.maxsim on MultiVectors (exact, ragged);
  matmul       torch.mm of the candidate and query matrices (the fastest layout measured here),
               nothing else: the floor for the same FLOPs on this machine;
  padded       candidates zero-padded to the longest, einsum + max + sum, as PyLate scores.
Candidate lengths vary ±30% around --doc-tokens, as real documents do.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchkit import interleaved_times

import edgecolbert


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    report = {"threads": args.threads, "dim": args.dim, "query_tokens": args.query_tokens, "rows": []}
    print(f"{'candidates':>10} {'edgecolbert ms':>15} {'matmul ms':>10} {'padded ms':>10} {'ours/matmul':>12}")
    for n in args.candidates:
        query, packed = _data(rng, n, args.doc_tokens, args.query_tokens, args.dim)
        contenders = _contenders(query, packed)
        times = interleaved_times(contenders, args.repeats)
        row = {"candidates": n, **{name: statistics.median(samples) * 1e3 for name, samples in times.items()}}
        row["ours_over_matmul"] = row["edgecolbert"] / row["matmul"]
        report["rows"].append(row)
        print(
            f"{n:>10} {row['edgecolbert']:>15.2f} {row['matmul']:>10.2f} {row['padded']:>10.2f} "
            f"{row['ours_over_matmul']:>12.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--doc-tokens", type=int, default=300)
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def _data(
    rng: np.random.Generator, n: int, doc_tokens: int, query_tokens: int, dim: int
) -> tuple[np.ndarray, edgecolbert.MultiVectors]:
    lengths = rng.integers(int(doc_tokens * 0.7), int(doc_tokens * 1.3) + 1, size=n)
    docs = [_unit(rng.standard_normal((int(length), dim))) for length in lengths]
    return _unit(rng.standard_normal((query_tokens, dim))), edgecolbert.MultiVectors.from_arrays(docs)


def _contenders(query: np.ndarray, packed: edgecolbert.MultiVectors) -> dict[str, Callable[[], object]]:
    q = torch.from_numpy(query)
    flat = torch.from_numpy(packed.data)
    padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(d) for d in packed], batch_first=True)
    mask = padded.abs().sum(-1) > 0
    # Written into a preallocated block: a fresh output each call would time page faults, not FLOPs.
    product = torch.empty((flat.shape[0], q.shape[0]))

    def padded_einsum() -> torch.Tensor:
        sims = torch.einsum("qd,ntd->nqt", q, padded) * mask[:, None, :]
        return sims.max(dim=-1).values.sum(dim=-1)

    return {
        "edgecolbert": lambda: edgecolbert.maxsim(query, packed),
        "matmul": lambda: torch.mm(flat, q.T, out=product),
        "padded": padded_einsum,
    }


if __name__ == "__main__":
    main()
