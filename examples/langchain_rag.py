"""A LangChain RAG chain (LCEL) whose retriever is edgecolbert's embedded store: BM25 first stage + MaxSim.

    python examples/langchain_rag.py                                   # built-in passages, default model
    python examples/langchain_rag.py --model ./my-checkpoint --question "How tall is the Eiffel Tower?"
    python examples/langchain_rag.py --dataset ../shared/data/scifact --limit 500 --question "..."

Needs `pip install -e integrations/langchain`. The documents go into an EdgeStore (Qdrant Edge, in a
temporary folder unless --store DIR); the retriever asks BM25 for candidates and orders them by MaxSim
in one engine query. The chain formats the passages into a prompt for a chat model. The chat model
here is langchain-core's FakeListChatModel, so the example runs offline with canned replies: put any
LangChain chat model (ChatOpenAI, ChatOllama, ...) in its place for real answers.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_edgecolbert import EdgeColbertRetriever

from edgecolbert.sources.beir import iter_corpus
from edgecolbert.store import EdgeStore

PASSAGES = {
    "eiffel": "The Eiffel Tower in Paris was completed in 1889 for the World's Fair and is 330 metres tall.",
    "great-wall": "The Great Wall of China stretches for thousands of kilometres; dynasties built it to guard "
    "the northern frontier.",
    "photosynthesis": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar, releasing "
    "oxygen.",
    "colbert": "ColBERT is a late-interaction retrieval model: it keeps one vector per token and scores a document "
    "by adding up, for each query token, its best match among the document's tokens (MaxSim).",
    "bm25": "BM25 ranks documents by how often the query terms appear in them, discounting common terms and "
    "long documents.",
    "qdrant": "Qdrant is a vector database; Qdrant Edge runs the same engine inside an application process, "
    "without a server.",
    "mitochondria": "Mitochondria are the organelles that produce most of a cell's chemical energy, as ATP.",
    "volcano": "A volcano erupts when molten rock, gas and ash escape from a magma chamber through the crust.",
    "jupiter": "Jupiter is the largest planet of the Solar System, a gas giant whose Great Red Spot is a storm "
    "larger than the Earth.",
    "tides": "Ocean tides are caused mainly by the Moon's gravity pulling on the Earth's oceans.",
    "violin": "The violin has four strings tuned in fifths and is played with a bow strung with horsehair.",
    "coffee": "Coffee beans are the roasted seeds of the Coffea plant; caffeine is the stimulant they contain.",
}
QUESTIONS = [
    "How tall is the Eiffel Tower?",
    "What causes the ocean tides?",
    "How does a late-interaction model score a document?",
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question from the numbered passages only, citing them as [n]."),
        ("human", "Passages:\n{context}\n\nQuestion: {question}"),
    ]
)


def main() -> int:
    args = _parse_args()
    # Long corpus passages are truncated to the model's document length; one notice per batch is noise here.
    logging.getLogger("edgecolbert").setLevel(logging.ERROR)
    questions = args.question or QUESTIONS
    with tempfile.TemporaryDirectory() as scratch:
        store = EdgeStore(args.store or Path(scratch) / "store", args.model)
        try:
            report = store.add_documents(_documents(args.dataset, args.limit))
            print(f"store: {store.count()} passages ({report.added} encoded now), model {store.schema.model}")
            retriever = EdgeColbertRetriever(store=store, first_stage="bm25", prefetch_k=args.prefetch, k=args.k)
            chain = rag_chain(retriever, FakeListChatModel(responses=[_canned_reply(q) for q in questions]))
            for question in questions:
                _show(chain.invoke(question), show_prompt=args.show_prompt)
        finally:
            store.close()
    return 0


def rag_chain(retriever: Runnable[str, list[Document]], llm: Runnable[Any, Any]) -> Runnable[str, dict[str, Any]]:
    """question -> {question, sources, prompt, answer}: retriever | format | prompt | chat model | parser.

    The sources and the prompt travel with the answer so a caller can show what the answer rests on.
    """
    return (
        RunnableParallel(question=RunnablePassthrough(), sources=retriever)
        .assign(prompt=RunnableLambda(_prompt_inputs) | PROMPT)
        .assign(answer=itemgetter("prompt") | llm | StrOutputParser())
    )


def _prompt_inputs(state: dict[str, Any]) -> dict[str, str]:
    return {"context": format_documents(state["sources"]), "question": state["question"]}


def format_documents(documents: list[Document]) -> str:
    return "\n".join(f"[{n}] {doc.page_content}" for n, doc in enumerate(documents, start=1))


def _canned_reply(question: str) -> str:
    return f"[a real chat model answers {question!r} here, from the passages in the prompt]"


def _documents(dataset: Path | None, limit: int) -> Any:
    if dataset is None:
        return ({"id": doc_id, "text": text} for doc_id, text in PASSAGES.items())
    return ({"id": doc.id, "text": doc.full_text} for doc in islice(iter_corpus(dataset), limit))


def _show(result: dict[str, Any], *, show_prompt: bool) -> None:
    print(f"\nQ: {result['question']}")
    if not result["sources"]:
        print("  no passage shares a word with the question (BM25 found no candidates)")
    for n, doc in enumerate(result["sources"], start=1):
        print(f"  [{n}] {doc.id}  maxsim={doc.metadata['relevance_score']:.3f}  {doc.page_content[:70]}")
    if show_prompt:
        print("  prompt:\n" + "\n".join("    " + line for line in result["prompt"].to_string().splitlines()))
    print(f"A: {result['answer']}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or checkpoint folder (default: edgecolbert's default model)")
    parser.add_argument("--question", action="append", help="ask this instead of the built-in questions (repeatable)")
    parser.add_argument("--dataset", type=Path, help="a BEIR folder (corpus.jsonl) instead of the built-in passages")
    parser.add_argument("--limit", type=int, default=1000, help="passages read from --dataset (default 1000)")
    parser.add_argument("--store", type=Path, help="keep the store in this folder (default: a temporary one)")
    parser.add_argument("-k", type=int, default=3, help="passages given to the chat model (default 3)")
    parser.add_argument("--prefetch", type=int, default=50, help="BM25 candidates reranked by MaxSim (default 50)")
    parser.add_argument("--show-prompt", action="store_true", help="print the prompt the chat model receives")
    args = parser.parse_args()
    if args.dataset is not None and not (args.dataset / "corpus.jsonl").is_file():
        parser.error(f"no corpus.jsonl in {args.dataset}")
    return args


if __name__ == "__main__":
    sys.exit(main())
