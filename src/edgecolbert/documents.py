"""Documents in, results out: the types the reranker, the stores and the integrations share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from edgecolbert.errors import EdgeColbertError, InvalidInputError, InvalidTypeError

if TYPE_CHECKING:
    from edgecolbert.scoring.explain import TextHighlights

DEFAULT_TOP_K = 3
"""How many results the LangChain and LlamaIndex components return unless told otherwise (their
``top_n``, ``k`` and ``similarity_top_k``). The core's own calls keep theirs: ``Reranker.rerank`` returns
every document, a store search ten hits."""


@dataclass(frozen=True)
class StoreDocument:
    """One text with the caller's id and metadata, to store or to rerank.

    In a store ``id`` is the caller's id (a UUIDv5 of the text when absent); for
    ``Reranker.rerank(..., store=...)`` it is the id the document is stored under.
    """

    text: str
    id: str | int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


DocumentLike = StoreDocument | Mapping[str, Any] | str


@dataclass(frozen=True, kw_only=True)
class Result:
    """One ranked document, from the reranker or from a store.

    ``score`` is the raw MaxSim; ``normalized_score`` divides it by the query's vector count, which
    bounds it to [-1, 1] whatever the query length, so it can be thresholded. It is None where
    ``score`` is no MaxSim: first-stage scores (``search_first_stage``) and ``get``.
    ``id`` is the document's id (None for a plain string given to the reranker); ``index`` its
    position in the list given to the reranker (None for store search hits). ``highlights`` holds the
    document's best passages and matched spans when the call was asked for them (``highlight=True``),
    else None.
    """

    id: str | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float
    normalized_score: float | None = None
    index: int | None = None
    # Left out of repr: it holds a whole explanation per result.
    highlights: TextHighlights | None = field(default=None, repr=False)

    @property
    def document(self) -> str:
        """The text; the name reranker results had before they shared this type with store hits."""
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``highlights`` appears only when set, so results without it keep their shape."""
        data = asdict(replace(self, highlights=None))
        del data["highlights"]
        if self.highlights is not None:
            data["highlights"] = self.highlights.to_dict()
        return data


_T = TypeVar("_T")


def present(value: _T | None, name: str) -> _T:
    """``value``, a :class:`Result` field that the results at hand always set.

    Reranker results always have ``index`` and ``normalized_score``; store hits always have ``id``.
    """
    if value is None:
        raise EdgeColbertError(f"A result came without its {name}, which results of this kind always have.")
    return value


# The names each half of the library used before the two shared one type.
Hit = Result
RerankResult = Result


class RerankResults(Sequence[Result]):
    """Results best first. ``results.top_k(3)`` keeps the first three.

    A rerank given a store counts how the documents were scored: ``stored`` from the store's vectors,
    ``encoded`` by the model. Without a store every document is encoded.
    """

    def __init__(self, results: Sequence[Result], *, stored: int = 0, encoded: int = 0) -> None:
        self._results = list(results)
        self.stored = stored
        self.encoded = encoded

    @overload
    def __getitem__(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: slice) -> RerankResults: ...

    def __getitem__(self, index: int | slice) -> Result | RerankResults:
        if isinstance(index, slice):
            return RerankResults(self._results[index], stored=self.stored, encoded=self.encoded)
        return self._results[index]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def top_k(self, k: int) -> RerankResults:
        check_top_k(k)
        return self[:k]

    def to_list(self) -> list[dict[str, Any]]:
        return [result.to_dict() for result in self._results]

    def __repr__(self) -> str:
        return f"RerankResults({self._results!r}, stored={self.stored}, encoded={self.encoded})"


def check_top_k(top_k: object) -> None:
    """``top_k`` is a positive integer; callers that take None for "all" check it before calling."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InvalidInputError(f"top_k must be a positive integer (or None for all), got {top_k!r}.")


def as_document(item: DocumentLike) -> StoreDocument:
    """A ``StoreDocument`` from one, a mapping with ``text`` (and optional ``id``, ``metadata``) or a string."""
    if isinstance(item, StoreDocument):
        return item
    if isinstance(item, str):
        return StoreDocument(text=item)
    if isinstance(item, Mapping):
        if "text" not in item:
            raise InvalidInputError(f"A document mapping needs a 'text' key; got keys {sorted(item)}.")
        return StoreDocument(text=item["text"], id=item.get("id"), metadata=item.get("metadata") or {})
    raise InvalidTypeError(f"Documents are StoreDocument, mapping or str; got {type(item).__name__}.")
