"""The ``edgecolbert`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecolbert.encoder import MODEL_ENV_VAR, default_model_name
from edgecolbert.errors import EdgeColbertError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except EdgeColbertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecolbert", description="Late-interaction reranking with ColBERT models.")
    commands = parser.add_subparsers(dest="command", required=True)

    rerank = commands.add_parser("rerank", help="rank candidate texts for a query")
    rerank.add_argument("query")
    rerank.add_argument("documents", nargs="*", help="candidate texts (or use --file)")
    rerank.add_argument("--file", type=Path, help="candidates, one per line ('-' for standard input)")
    rerank.add_argument("-k", "--top-k", type=int, default=None, help="keep the k best")
    rerank.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_model_options(rerank)
    rerank.set_defaults(run=_run_rerank)

    convert = commands.add_parser(
        "convert", help="wrap a local sentence-transformers model as a late-interaction checkpoint"
    )
    convert.add_argument("source", type=Path)
    convert.add_argument("target", type=Path)
    convert.add_argument("--query-length", type=int, default=64)
    convert.add_argument("--document-length", type=int, default=256)
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(run=_run_convert)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help=f"hub id or checkpoint folder (default: ${MODEL_ENV_VAR}, else {default_model_name()})",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--batch-size", type=int, default=16)


def _read_candidates(args: argparse.Namespace) -> list[str]:
    documents = list(args.documents)
    if args.file is not None:
        handle = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
        with handle:
            documents.extend(line.rstrip("\n") for line in handle if line.strip())
    return documents


def _run_rerank(args: argparse.Namespace) -> int:
    from edgecolbert.rerank import Reranker

    documents = _read_candidates(args)
    reranker = Reranker.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)
    results = reranker.rerank(args.query, documents, top_k=args.top_k)
    if args.json:
        print(json.dumps(results.to_list(), ensure_ascii=False, indent=2))
        return 0
    for rank, result in enumerate(results, start=1):
        snippet = " ".join(result.document.split())[:80]
        print(f"{rank:>3}  {result.score:8.3f}  {result.normalized_score:6.3f}  [{result.index}] {snippet}")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from edgecolbert.convert import from_sentence_transformer

    target = from_sentence_transformer(
        args.source,
        args.target,
        query_length=args.query_length,
        document_length=args.document_length,
        overwrite=args.overwrite,
    )
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
