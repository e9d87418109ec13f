"""Late interaction on a collection langchain-qdrant made: attach a colbert vector, see the order change.

    python examples/langchain_qdrant_attach.py                        # default model
    python examples/langchain_qdrant_attach.py --model ./my-checkpoint --question "..."

Needs `pip install -e integrations/langchain` and langchain-qdrant. A QdrantVectorStore is built in
qdrant-client's local mode (no server) with langchain-core's DeterministicFakeEmbedding, so it runs
offline; its dense order is therefore arbitrary, which makes the rerank easy to see. With a real
embedding model, and a Qdrant server (QdrantClient(url=...)), the code is the same.

`QdrantStore.attach` adds a `colbert` multivector to the collection and fills it from each point's
`page_content`, once. Then:
- EdgeColbertRetriever(first_stage="dense") runs one Qdrant query: dense prefetch, MaxSim on colbert;
- RerankRetriever(vector_store.as_retriever(), EdgeColbertRerank(store=...)) reranks langchain-qdrant's
  own results from the stored vectors, without encoding them again. Both give the same order.
"""

from __future__ import annotations

import argparse
import logging
import sys

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_edgecolbert import EdgeColbertRerank, EdgeColbertRetriever, RerankRetriever
from langchain_qdrant import QdrantVectorStore

from edgecolbert.store import QdrantStore

COLLECTION = "langchain_docs"
PASSAGES = {
    "late interaction": "Late-interaction models keep one vector per token and score a document with MaxSim: "
    "each query token takes its best match among the document's tokens.",
    "bm25": "BM25 is a lexical ranking function built on term frequency and inverse document frequency.",
    "dense retrieval": "Dense retrieval encodes a whole passage into a single vector and compares vectors by cosine.",
    "hnsw": "HNSW is a graph index for approximate nearest-neighbour search over single vectors.",
    "quantization": "Scalar quantization stores vectors as 8-bit integers to cut memory about fourfold.",
    "reranking": "A reranker reorders the candidates a fast first stage returns, using a slower, better model.",
    "tokenizer": "A WordPiece tokenizer splits words into sub-word units from a fixed vocabulary.",
    "payload filter": "Payload filters restrict a vector search to points whose metadata match conditions.",
    "sharding": "Sharding splits a collection across machines so it can grow beyond one server.",
    "embedding cache": "Caching document embeddings avoids encoding the same text twice.",
}
QUESTION = "how does late interaction score a document with token vectors"


def main() -> int:
    args = _parse_args()
    logging.getLogger("edgecolbert").setLevel(logging.ERROR)
    embeddings = DeterministicFakeEmbedding(size=64)
    vector_store = QdrantVectorStore.from_texts(
        list(PASSAGES.values()),
        embeddings,
        metadatas=[{"title": title} for title in PASSAGES],
        location=":memory:",
        collection_name=COLLECTION,
    )
    print(f"langchain-qdrant collection '{COLLECTION}': {len(PASSAGES)} passages, dense vectors only")

    print(f"\nQ: {args.question}\n\nbefore (langchain-qdrant, dense):")
    for rank, (doc, score) in enumerate(vector_store.similarity_search_with_score(args.question, k=args.k), 1):
        print(f"  {rank}. {doc.metadata['title']:<18} cosine={score:.3f}")

    store = QdrantStore.attach(COLLECTION, args.model, client=vector_store.client, dense=embeddings, progress=False)
    print(f"\nattached a colbert vector ({store.count()} points encoded with {store.schema.model})")

    retriever = EdgeColbertRetriever(store=store, first_stage="dense", prefetch_k=args.prefetch, k=args.k)
    after = retriever.invoke(args.question)
    print(f"\nafter (dense top {args.prefetch}, reordered by MaxSim):")
    for rank, doc in enumerate(after, 1):
        print(f"  {rank}. {doc.metadata['title']:<18} maxsim={doc.metadata['relevance_score']:.3f}")

    reranked = RerankRetriever(
        base_retriever=vector_store.as_retriever(search_kwargs={"k": args.prefetch}),
        reranker=EdgeColbertRerank(store=store, top_n=args.k),
    ).invoke(args.question)
    same = [doc.metadata["title"] for doc in reranked] == [doc.metadata["title"] for doc in after]
    print(f"\nRerankRetriever over the vector store's own retriever gives the same order: {'yes' if same else 'no'}")
    store.close()
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or checkpoint folder (default: edgecolbert's default model)")
    parser.add_argument("--question", default=QUESTION, help="the query to run before and after")
    parser.add_argument("-k", type=int, default=5, help="results shown (default 5)")
    parser.add_argument("--prefetch", type=int, default=10, help="dense candidates reranked (default 10: all)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
