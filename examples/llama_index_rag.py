"""Retrieval-augmented answering in LlamaIndex over an embedded edgecolbert store, fully offline.

    python examples/llama_index_rag.py                                   # edgecolbert's default model
    python examples/llama_index_rag.py --model /tmp/edgecolbert-minilm "Which river flows through Cairo?"
    python examples/llama_index_rag.py --model ./my-checkpoint --json

A dozen built-in passages go into a Qdrant Edge store (token vectors encoded once). Two query engines
then answer the question with LlamaIndex's ``MockLLM`` (it echoes its prompt, so the answer shows the
context the LLM received; no API key, no network):

1. ``EdgeColbertRetriever``: BM25 proposes candidates and MaxSim over their stored vectors orders
   them, in one store query.
2. Any first stage (here an in-memory vector index with a mock embedding, standing in for whatever a
   pipeline already has) followed by ``EdgeColbertRerank`` as a node postprocessor, which scores the
   nodes from the store's vectors without encoding them again.

``--model`` takes a hub id or a folder (``edgecolbert convert`` turns a sentence-transformers model
into one); without it, ``EDGECOLBERT_MODEL`` or mxbai-edge-colbert-v0-17m from the Hugging Face cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.postprocessor.edgecolbert_rerank import EdgeColbertRerank
from llama_index.retrievers.edgecolbert import EdgeColbertRetriever

from edgecolbert.store import EdgeStore

PASSAGES = [
    ("paris", "Paris is the capital and largest city of France, on the river Seine.", "geography"),
    ("berlin", "Berlin is the capital of Germany and its most populous city.", "geography"),
    ("nile", "The Nile flows north through Egypt and Cairo into the Mediterranean Sea.", "geography"),
    ("everest", "Mount Everest, on the border of Nepal and China, is the highest mountain on Earth.", "geography"),
    ("photosynthesis", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.", "biology"),
    ("mitochondria", "Mitochondria produce most of the chemical energy that powers a cell.", "biology"),
    ("penicillin", "Alexander Fleming discovered penicillin, the first antibiotic, in 1928.", "medicine"),
    ("vaccines", "Vaccines train the immune system to recognise a pathogen before an infection.", "medicine"),
    ("violin", "A violin has four strings and is played with a bow; it is the smallest of its family.", "music"),
    ("comets", "Comets are icy bodies whose tails point away from the Sun as they approach it.", "astronomy"),
    ("moon", "The Moon orbits the Earth about once every 27 days and causes the ocean tides.", "astronomy"),
    ("python", "Python is a programming language known for its readable syntax and large library.", "computing"),
]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # Never reach for a hosted LLM or embedding model: both are local mocks.
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    with (
        tempfile.TemporaryDirectory() as scratch,
        EdgeStore(args.store or Path(scratch) / "store", args.model) as store,
    ):
        report = _fill(store)
        retrieved = _answer_with_retriever(store, args)
        reranked = _answer_with_rerank(store, args)
    result = {"query": args.query, "model": store.schema.model, "added": report, **retrieved, **reranked}
    print(json.dumps(result, indent=2) if args.json else _as_text(result))
    return 0


def _fill(store: EdgeStore) -> int:
    """Idempotent: a second run over the same --store finds every passage stored and encodes nothing."""
    before = store.count()
    ids = [doc_id for doc_id, _, _ in PASSAGES]
    texts = [text for _, text, _ in PASSAGES]
    store.add(texts, ids=ids, metadatas=[{"topic": topic} for _, _, topic in PASSAGES])
    return store.count() - before


def _answer_with_retriever(store: EdgeStore, args: argparse.Namespace) -> dict[str, Any]:
    retriever = EdgeColbertRetriever(store, similarity_top_k=args.top_k, prefetch_k=20, first_stage="bm25")
    engine = RetrieverQueryEngine.from_args(retriever, llm=Settings.llm)
    response = engine.query(args.query)
    return {"retriever": _sources(response), "retriever_answer": str(response)}


def _answer_with_rerank(store: EdgeStore, args: argparse.Namespace) -> dict[str, Any]:
    nodes = [TextNode(id_=doc_id, text=text, metadata={"topic": topic}) for doc_id, text, topic in PASSAGES]
    first_stage = VectorStoreIndex(nodes, embed_model=Settings.embed_model).as_retriever(similarity_top_k=len(nodes))
    rerank = EdgeColbertRerank(top_n=args.top_k, store=store)
    engine = RetrieverQueryEngine.from_args(first_stage, llm=Settings.llm, node_postprocessors=[rerank])
    response = engine.query(args.query)
    return {"reranked": _sources(response), "reranked_answer": str(response)}


def _sources(response: Any) -> list[dict[str, Any]]:
    return [
        {"id": source.node.node_id, "score": round(float(source.score or 0.0), 4), "text": source.node.get_content()}
        for source in response.source_nodes
    ]


def _as_text(result: dict[str, Any]) -> str:
    lines = [f"query: {result['query']}", f"model: {result['model']} ({result['added']} passages encoded)"]
    for key, title in (
        ("retriever", "EdgeColbertRetriever (BM25 prefetch, MaxSim in the store)"),
        ("reranked", "first stage + EdgeColbertRerank (stored vectors, nothing re-encoded)"),
    ):
        lines.append(f"\n{title}:")
        lines += [f"  {i}. {s['id']:<15} {s['score']:>9.4f}  {s['text']}" for i, s in enumerate(result[key], 1)]
        answer = result[f"{key}_answer"].strip().splitlines()
        lines.append(f"  MockLLM answer (its prompt, echoed): {' | '.join(line for line in answer if line)[:300]}")
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("query", nargs="?", default="Which city is the capital of France?")
    parser.add_argument("--model", default=None, help="hub id or checkpoint folder (default: edgecolbert's default)")
    parser.add_argument("--store", type=Path, default=None, help="keep the store in this folder (default: temporary)")
    parser.add_argument("-k", "--top-k", type=int, default=3, help="passages handed to the LLM")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
