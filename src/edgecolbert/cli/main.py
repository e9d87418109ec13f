"""The ``edgecolbert`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecolbert.encoding.backends import BACKENDS, QUANTIZATIONS
from edgecolbert.encoding.defaults import MODEL_ENV_VAR, default_model_name
from edgecolbert.errors import EdgeColbertError, InvalidInputError
from edgecolbert.store.defaults import (
    API_KEY_ENV_VAR,
    DEFAULT_COLLECTION,
    DEFAULT_STORE_PATH,
    FIRST_STAGES,
    URL_ENV_VAR,
)
from edgecolbert.training.cli import add_train_command

_DEFAULT_MODEL_HELP = f"the store's own model if it exists, else ${MODEL_ENV_VAR}, else {default_model_name()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except EdgeColbertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path the user named cannot be used (a file where a folder belongs, no permission).
        if exc.filename is None:
            raise
        print(f"error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
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

    index = commands.add_parser(
        "index", help="encode documents into a store (folder of .txt/.md, .jsonl, or a BEIR corpus)"
    )
    index.add_argument("path", type=Path, help="folder of .txt/.md files, a .jsonl file, or a BEIR corpus")
    _add_store_options(index)
    _add_model_options(index)
    index.add_argument("--write-batch", type=int, default=128, help="documents per acknowledged write")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.set_defaults(run=_run_index)

    search = commands.add_parser("search", help="search a store: first stage, then MaxSim, in one query")
    search.add_argument("query")
    _add_store_options(search)
    search.add_argument("-k", "--top-k", type=int, default=10, help="number of hits")
    search.add_argument("--prefetch-k", type=int, default=100, help="first-stage candidates to rerank")
    search.add_argument("--first-stage", choices=FIRST_STAGES, default=None)
    search.add_argument(
        "--filter", type=_json_filter, default=None, help='metadata filter as JSON, e.g. \'{"lang": "en"}\''
    )
    search.add_argument("--json", action="store_true", help="print a JSON list of hits")
    _add_model_options(search, default_help="the model the store was built with", encodes_documents=False)
    search.set_defaults(run=_run_search)

    serve = commands.add_parser("serve", help="run the HTTP rerank and search service")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    serve.add_argument("--port", type=int, default=8000)
    serve_store = serve.add_mutually_exclusive_group()
    serve_store.add_argument("--store", type=Path, default=None, help="embedded store folder for /v1/search")
    serve.add_argument(
        "--create-store", action="store_true", help="make an empty store at --store if none is there (else an error)"
    )
    serve_store.add_argument("--qdrant-url", default=None, help="Qdrant server for /v1/search (or $QDRANT_URL)")
    serve.add_argument("--collection", default=None, help=f"Qdrant collection (default: {DEFAULT_COLLECTION})")
    serve.add_argument("--qdrant-api-key", default=None, help=f"Qdrant API key (or ${API_KEY_ENV_VAR})")
    serve.add_argument("--api-key", default=None, help="bearer key clients must send (or $EDGECOLBERT_API_KEY)")
    serve.add_argument("--workers", type=int, default=1, help="model calls running at once")
    serve.add_argument("--max-pending", type=int, default=512, help="calls running or queued before 503")
    serve.add_argument("--max-documents", type=int, default=1000, help="documents per request")
    serve.add_argument("--max-document-chars", type=int, default=50_000, help="characters per document")
    serve.add_argument("--max-query-chars", type=int, default=4_000, help="characters per query")
    serve.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="bytes per request body")
    serve.add_argument("--max-k", type=int, default=1000, help="largest top_k / prefetch_k of a search")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    _add_model_options(serve)
    serve.set_defaults(run=_run_serve)

    evaluation = commands.add_parser(
        "eval", help="judge the rerank on a BEIR-layout collection: first stage vs. MaxSim, NDCG@10, Recall@100, MRR@10"
    )
    evaluation.add_argument(
        "--dataset", type=Path, required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/"
    )
    evaluation.add_argument("--split", default="test", help="judgments to use: qrels/<split>.tsv")
    # Spelled here rather than read from edgecolbert.evaluation, which imports the model stack: --help must not.
    evaluation.add_argument("--first-stage", choices=["bm25"], default="bm25", help="the store's BM25")
    evaluation.add_argument("--top-k", type=int, default=100, help="first-stage candidates to rerank")
    evaluation.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N judged queries")
    evaluation.add_argument(
        "--json", type=Path, default=None, help="write the summary here and per-query rows to <stem>.per_query.jsonl"
    )
    evaluation.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where corpus vectors are kept (default: $EDGECOLBERT_EVAL_CACHE or ~/.cache/edgecolbert/eval)",
    )
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_model_options(evaluation, default_help=f"${MODEL_ENV_VAR}, else {default_model_name()}")
    evaluation.set_defaults(run=_run_eval)

    add_train_command(commands)
    return parser


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", type=Path, default=None, help=f"embedded store folder (default: {DEFAULT_STORE_PATH})"
    )
    parser.add_argument("--qdrant-url", default=None, help=f"Qdrant server instead of a folder (or ${URL_ENV_VAR})")
    parser.add_argument("--collection", default=DEFAULT_COLLECTION, help="Qdrant collection name")
    parser.add_argument("--api-key", default=None, help=f"Qdrant API key (or ${API_KEY_ENV_VAR})")


def _add_model_options(
    parser: argparse.ArgumentParser, default_help: str | None = None, *, encodes_documents: bool = True
) -> None:
    """The options every command loads its model with; ``--pool-factor`` only where documents are encoded."""
    parser.add_argument(
        "--model",
        default=None,
        help=f"hub id or checkpoint folder (default: {default_help or _DEFAULT_MODEL_HELP})",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="torch (default), or onnx: ONNX Runtime on the CPU, exported once and cached (needs the onnx extra)",
    )
    parser.add_argument(
        "--quantize", choices=QUANTIZATIONS, default=None, help="int8: dynamic int8 weights (with --backend onnx)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the torch backbone with TorchInductor: faster bulk encoding after a first batch that "
        "takes tens of seconds (needs a C++ compiler on the CPU)",
    )
    if encodes_documents:
        parser.add_argument(
            "--pool-factor",
            type=int,
            default=None,
            metavar="N",
            help="pool each document's token vectors to about 1/N of them (default 1: off; a store keeps its own)",
        )


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords for ``ColBERT.from_pretrained`` from the model options; options left out stay out.

    A store tells an option the user gave from one left at its default, so only given ones are passed.
    """
    if args.quantize is not None and args.backend != "onnx":
        raise InvalidInputError(
            f"--quantize {args.quantize} needs --backend onnx (the torch backend runs float weights)."
        )
    if args.compile and args.backend == "onnx":
        raise InvalidInputError("--compile compiles the torch backend; drop it with --backend onnx.")
    pool_factor = getattr(args, "pool_factor", None)
    if pool_factor is not None and pool_factor < 1:
        raise InvalidInputError(f"--pool-factor must be a positive integer (1 turns pooling off); got {pool_factor}.")
    given = {
        "backend": args.backend,
        "quantize": args.quantize,
        "pool_factor": pool_factor,
        "compile": args.compile or None,
    }
    return {"device": args.device, **{name: value for name, value in given.items() if value is not None}}


def _read_candidates(args: argparse.Namespace) -> list[str]:
    documents = list(args.documents)
    if args.file is not None:
        handle = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
        with handle:
            documents.extend(line.rstrip("\n") for line in handle if line.strip())
    return documents


def _run_rerank(args: argparse.Namespace) -> int:
    from edgecolbert.scoring.reranker import Reranker

    documents = _read_candidates(args)
    reranker = Reranker.from_pretrained(args.model, batch_size=args.batch_size, **_model_kwargs(args))
    results = reranker.rerank(args.query, documents, top_k=args.top_k)
    if args.json:
        print(json.dumps(results.to_list(), ensure_ascii=False, indent=2))
        return 0
    for rank, result in enumerate(results, start=1):
        snippet = " ".join(result.text.split())[:80]
        print(f"{rank:>3}  {result.score:8.3f}  {result.normalized_score:6.3f}  [{result.index}] {snippet}")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from edgecolbert.encoding.convert import from_sentence_transformer

    target = from_sentence_transformer(
        args.source,
        args.target,
        query_length=args.query_length,
        document_length=args.document_length,
        overwrite=args.overwrite,
    )
    print(target)
    return 0


def _json_filter(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'--filter takes a JSON object such as {{"lang": "en"}}: {exc}') from exc


def _store_from_args(args: argparse.Namespace, model: str | None, *, create: bool):  # type: ignore[no-untyped-def]
    from edgecolbert.sources.pipeline import open_store

    return open_store(
        store=args.store,
        qdrant_url=args.qdrant_url,
        collection=args.collection,
        api_key=args.api_key,
        model=model,
        create=create,
        encode_batch_size=args.batch_size,
        **_model_kwargs(args),
    )


def _run_index(args: argparse.Namespace) -> int:
    from edgecolbert.sources.pipeline import index_path

    with _store_from_args(args, args.model, create=True) as store:
        summary = index_path(store, args.path, batch_size=args.write_batch, progress=not args.no_progress)
        report = summary.report
        print(
            f"indexed {report.seen} documents in {summary.seconds:.1f} s ({summary.documents_per_second:.1f} docs/s): "
            f"{report.added} new, {report.reencoded} re-encoded, {report.metadata_updated} metadata updates, "
            f"{report.unchanged} unchanged; the store holds {store.count()}"
        )
        if report.truncated:
            print(f"{report.truncated} documents were longer than the model's document length and were truncated")
    return 0


def _run_search(args: argparse.Namespace) -> int:
    with _store_from_args(args, args.model, create=False) as store:
        hits = store.search(
            args.query, top_k=args.top_k, prefetch_k=args.prefetch_k, first_stage=args.first_stage, filter=args.filter
        )
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no hits")
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:80]
        print(f"{rank:>3}  {hit.score:8.3f}  {hit.id}  {snippet}")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    import os

    from pydantic import ValidationError

    from edgecolbert.serving.app import API_KEY_ENV_VAR as SERVICE_KEY_ENV_VAR
    from edgecolbert.serving.app import ServiceLimits, ServiceSettings, create_app, serve
    from edgecolbert.sources.pipeline import check_store_folder

    if args.collection is not None and args.qdrant_url is None and not os.environ.get(URL_ENV_VAR):
        raise InvalidInputError("--collection names a Qdrant collection: add --qdrant-url URL (or set $QDRANT_URL).")
    if args.create_store and args.store is None:
        raise InvalidInputError("--create-store makes the store named by --store: add --store DIR.")
    if args.store is not None:
        check_store_folder(args.store, create=args.create_store)
    api_key = args.api_key or os.environ.get(SERVICE_KEY_ENV_VAR) or None
    try:
        settings = ServiceSettings(
            model=args.model,
            store=args.store,
            qdrant_url=args.qdrant_url,
            collection=args.collection or DEFAULT_COLLECTION,
            qdrant_api_key=args.qdrant_api_key or os.environ.get(API_KEY_ENV_VAR) or None,
            api_key=api_key,
            batch_size=args.batch_size,
            **_model_kwargs(args),
            limits=ServiceLimits(
                max_documents=args.max_documents,
                max_document_chars=args.max_document_chars,
                max_query_chars=args.max_query_chars,
                max_body_bytes=args.max_body_bytes,
                max_k=args.max_k,
                workers=args.workers,
                max_pending=args.max_pending,
            ),
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(error['loc'][-1]).replace('_', '-') if error['loc'] else 'options'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidInputError(f"bad serve options: {problems}") from exc
    if api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without an API key: anyone who reaches it can use it", file=sys.stderr)
    app = create_app(settings)
    serve(app, args.host, args.port, log_level=args.log_level)
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from edgecolbert.evaluation import evaluate

    report = evaluate(
        args.dataset,
        args.model,
        split=args.split,
        first_stage=args.first_stage,
        top_k=args.top_k,
        cache_dir=args.cache_dir,
        max_queries=args.max_queries,
        progress=not args.no_progress,
        encode_batch_size=args.batch_size,
        **_model_kwargs(args),
    )
    print(report.table())
    if args.json is not None:
        rows = report.write(args.json)
        print(f"summary written to {args.json}, per-query results to {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
