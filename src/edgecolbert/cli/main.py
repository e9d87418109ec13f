"""The ``edgecolbert`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecolbert.encoding.backends import BACKENDS, QUANTIZATIONS
from edgecolbert.encoding.defaults import MODEL_ENV_VAR, default_model_name
from edgecolbert.encoding.exported import runs_on_onnx
from edgecolbert.errors import EdgeColbertError, InvalidInputError
from edgecolbert.store.defaults import API_KEY_ENV_VAR, DEFAULT_COLLECTION, DEFAULT_STORE_PATH, URL_ENV_VAR
from edgecolbert.store.stages import EVAL_FIRST_STAGES, FIRST_STAGES
from edgecolbert.training.cli import add_train_command

if TYPE_CHECKING:
    from edgecolbert.store.base import BaseStore

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
    _add_highlight_options(rerank)
    _add_model_options(rerank)
    rerank.set_defaults(run=_run_rerank)

    convert = commands.add_parser(
        "convert", help="wrap a local sentence-transformers model as a late-interaction checkpoint"
    )
    convert.add_argument("source", type=Path)
    convert.add_argument("target", type=Path)
    convert.add_argument("--query-length", type=int, default=64)
    convert.add_argument(
        "--document-length", type=int, default=None, help="tokens per document (default: all the backbone takes)"
    )
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(run=_run_convert)

    export = commands.add_parser(
        "export",
        help="write a self-contained ONNX folder (fp32 and int8 graphs, tokenizer, settings) that runs without "
        "torch (needs the torch extra to make)",
    )
    export.add_argument("model", help="hub id or checkpoint folder")
    export.add_argument("target", type=Path, help="folder to write (a later --model, or ColBERT.from_pretrained)")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty target folder")
    export.set_defaults(run=_run_export)

    index = commands.add_parser(
        "index", help="encode documents into a store (folder of .txt/.md, .jsonl, or a BEIR corpus)"
    )
    index.add_argument("path", type=Path, help="folder of .txt/.md files, a .jsonl file, or a BEIR corpus")
    _add_store_options(index)
    _add_model_options(index)
    index.add_argument("--write-batch", type=int, default=128, help="documents per acknowledged write")
    index.add_argument(
        "--muvera",
        action="store_true",
        help="give a new store a MUVERA vector (default settings) for --first-stage muvera / hybrid-muvera",
    )
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
    _add_highlight_options(search)
    _add_model_options(search, default_help="the model the store was built with", encodes_documents=False)
    search.set_defaults(run=_run_search)

    explain = commands.add_parser(
        "explain", help="why a document scores what it does: each query token's best document token"
    )
    explain.add_argument("query")
    explain_target = explain.add_mutually_exclusive_group(required=True)
    explain_target.add_argument("document", nargs="?", default=None, help="the document text")
    explain_target.add_argument("--id", default=None, help="a stored document's id instead of a text (with --store)")
    _add_store_options(explain)
    explain.add_argument("--json", action="store_true", help="print the alignment as JSON")
    explain.add_argument(
        "--fragment-chars", type=int, default=160, metavar="N", help="longest highlighted passage (default 160)"
    )
    _add_model_options(explain, encodes_documents=False)
    explain.set_defaults(run=_run_explain)
    backfill = commands.add_parser(
        "backfill-muvera",
        help="give an existing store the MUVERA vector from its stored vectors (no re-encoding; resumable)",
    )
    _add_store_options(backfill)
    backfill.add_argument("--write-batch", type=int, default=256, help="documents per acknowledged write")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_options(backfill, default_help="the model the store was built with", encodes_documents=False)
    backfill.set_defaults(run=_run_backfill_muvera)

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
    evaluation.add_argument(
        "--first-stage",
        choices=EVAL_FIRST_STAGES,
        default=EVAL_FIRST_STAGES[0],
        help="the store's BM25, its MUVERA vector (added from the cached corpus vectors), or both fused",
    )
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


def _add_highlight_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--highlight",
        action="store_true",
        help="show each result's best passage with the matched words marked (bold on a terminal, [[word]] "
        "otherwise); with --json, add the passages and matched spans",
    )
    parser.add_argument(
        "--fragment-chars", type=int, default=160, metavar="N", help="longest highlighted passage (default 160)"
    )


def _add_model_options(
    parser: argparse.ArgumentParser, default_help: str | None = None, *, encodes_documents: bool = True
) -> None:
    """The options every command loads its model with; ``--pool-factor`` only where documents are encoded."""
    parser.add_argument(
        "--model",
        default=None,
        help=f"hub id, checkpoint or `edgecolbert export` folder (default: {default_help or _DEFAULT_MODEL_HELP})",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="torch (default for a checkpoint; needs the torch extra), or onnx: ONNX Runtime on the CPU, exported "
        "once and cached (an `edgecolbert export` folder always runs on onnx)",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=None,
        help="int8: dynamic int8 weights (with --backend onnx or an export folder)",
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
        parser.add_argument(
            "--document-length",
            type=int,
            default=None,
            metavar="N",
            help="tokens per document before truncation (default: the checkpoint's; at most the backbone's positions)",
        )


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords for ``ColBERT.from_pretrained`` from the model options; options left out stay out.

    A store tells an option the user gave from one left at its default, so only given ones are passed.
    """
    if args.quantize is not None and not runs_on_onnx(args.model or default_model_name(), args.backend):
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
        "document_length": getattr(args, "document_length", None),
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
    shown = _highlights(args, reranker.model, [result.text for result in results])
    if args.json:
        rows = results.to_list()
        for row, item in zip(rows, shown or []):
            row["highlights"] = item.to_dict()
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for rank, result in enumerate(results, start=1):
        snippet = " ".join(result.text.split())[:80]
        print(f"{rank:>3}  {result.score:8.3f}  {result.normalized_score:6.3f}  [{result.index}] {snippet}")
        _print_passage(result.text, shown, rank - 1)
    return 0


def _highlights(args: argparse.Namespace, model: Any, texts: list[str]) -> list[Any] | None:
    """Highlights of ``texts`` when ``--highlight`` was given (computed beside the results, not by them)."""
    if not args.highlight:
        return None
    from edgecolbert.scoring.explain import highlight_texts

    return highlight_texts(model, args.query, texts, max_passages=1, fragment_chars=args.fragment_chars)


def _print_passage(text: str, shown: list[Any] | None, position: int) -> None:
    if shown is None:
        return
    passages = shown[position].passages
    if not passages:
        print("       (no matched words)")
        return
    best = passages[0]
    print(f"       {marked(text, best.start, best.end, best.spans, tty=sys.stdout.isatty())}")


# A terminal shows matched words bold and reversed; pipes and files get plain-text brackets.
_TTY_MARKS = ("\x1b[1;7m", "\x1b[0m")
_TEXT_MARKS = ("[[", "]]")


def marked(text: str, start: int, end: int, spans: Sequence[tuple[int, int]], *, tty: bool) -> str:
    """``text[start:end]`` on one line with the words of ``spans`` marked (a word piece marks its word).

    Touching or overlapping words share one mark. Control characters in the (untrusted) text become
    spaces, so a document cannot drive the terminal.
    """
    from edgecolbert.scoring.explain import word_around

    open_mark, close_mark = _TTY_MARKS if tty else _TEXT_MARKS
    merged: list[list[int]] = []
    for span_start, span_end in sorted(word_around(text, *span) for span in spans):
        span_start, span_end = max(span_start, start), min(span_end, end)
        if span_start >= span_end:
            continue
        if merged and span_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span_end)
        else:
            merged.append([span_start, span_end])
    pieces, cursor = [], start
    for span_start, span_end in merged:
        pieces += [_one_line(text[cursor:span_start]), open_mark, _one_line(text[span_start:span_end]), close_mark]
        cursor = span_end
    pieces.append(_one_line(text[cursor:end]))
    return "".join(pieces)


def _one_line(text: str) -> str:
    return "".join(" " if char.isspace() or unicodedata.category(char)[0] == "C" else char for char in text)


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


def _run_export(args: argparse.Namespace) -> int:
    from edgecolbert.encoding.exported import export_model

    print(export_model(args.model, args.target, overwrite=args.overwrite))
    return 0


def _json_filter(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'--filter takes a JSON object such as {{"lang": "en"}}: {exc}') from exc


def _store_from_args(args: argparse.Namespace, model: str | None, *, create: bool, **options: Any) -> BaseStore:
    from edgecolbert.store.connect import open_store

    return open_store(
        store=args.store,
        qdrant_url=args.qdrant_url,
        collection=args.collection,
        api_key=args.api_key,
        model=model,
        create=create,
        encode_batch_size=args.batch_size,
        **options,
        **_model_kwargs(args),
    )


def _run_index(args: argparse.Namespace) -> int:
    from edgecolbert.sources.pipeline import index_path

    muvera = {"muvera": True} if args.muvera else {}
    with _store_from_args(args, args.model, create=True, **muvera) as store:
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
        shown = _highlights(args, store.model, [hit.text for hit in hits])
    if args.json:
        rows = [hit.to_dict() for hit in hits]
        for row, item in zip(rows, shown or []):
            row["highlights"] = item.to_dict()
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no hits")
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:80]
        print(f"{rank:>3}  {hit.score:8.3f}  {hit.id}  {snippet}")
        _print_passage(hit.text, shown, rank - 1)
    return 0


def _run_explain(args: argparse.Namespace) -> int:
    from edgecolbert.encoding.encoder import ColBERT
    from edgecolbert.scoring.explain import explain, highlights

    if args.id is not None:
        with _store_from_args(args, args.model, create=False) as store:
            text = store.stored_text(args.id)
            explanation = explain(store.model, args.query, text)
    else:
        model = ColBERT.from_pretrained(args.model, **_model_kwargs(args))
        text = args.document
        explanation = explain(model, args.query, text)
    passages = highlights(explanation, text, fragment_chars=args.fragment_chars)
    if args.json:
        data = explanation.to_dict()
        data["passages"] = [passage.to_dict() for passage in passages]
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"score {explanation.score:.3f} (normalized {explanation.normalized_score:.3f})")
    for match in explanation.matches:
        where = "-" if match.span is None else _one_line(text[match.span[0] : match.span[1]])
        print(
            f"  {_one_line(match.query_token):>16} -> {_one_line(match.document_token):<16} {where!s:<20} "
            f"{match.similarity:6.3f}"
        )
    if explanation.truncated:
        print(f"  (the document was truncated: text after character {explanation.encoded_end} was not seen)")
    tty = sys.stdout.isatty()
    for passage in passages:
        print(f"{passage.score:6.3f}  {marked(text, passage.start, passage.end, passage.spans, tty=tty)}")
    return 0


def _run_backfill_muvera(args: argparse.Namespace) -> int:
    with _store_from_args(args, args.model, create=False) as store:
        filled = store.add_muvera(batch_size=args.write_batch, progress=not args.no_progress)
        print(f"gave {filled} documents the muvera vector; all {store.count()} have it now")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    import os

    from pydantic import ValidationError

    from edgecolbert.serving.app import API_KEY_ENV_VAR as SERVICE_KEY_ENV_VAR
    from edgecolbert.serving.app import ServiceLimits, ServiceSettings, create_app, serve
    from edgecolbert.store.connect import check_store_folder

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
