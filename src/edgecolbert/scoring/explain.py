"""Why a document ranked: MaxSim split into one contribution per query token, and the passages they point at.

``score(q, d) = Σ_i max_j <q_i, d_j>``, so each kept query vector contributes exactly the similarity
of its best document token, and the contributions add up to the score. :func:`explain` reports,
for every query vector, that best document token and its character span in the original text;
:func:`highlights` turns the spans into search-engine style passages.

The document is always encoded from its text without pooling, whatever the model's
``pool_factor``: pooled vectors average several tokens and have no span. The explanation is
therefore that of the unpooled vectors; with ``pool_factor`` > 1 its score can differ slightly
from the score the pooled vectors gave in a ranking.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgecolbert.documents import Result
from edgecolbert.encoding.encoder import ColBERT, check_texts
from edgecolbert.encoding.tokenization import TokenAlignment, TokenRole
from edgecolbert.errors import InvalidInputError
from edgecolbert.scoring.maxsim import maxsim
from edgecolbert.scoring.reranker import check_query, check_query_vectors

# Matched words closer than this many characters (relative to the fragment length) join one passage.
_GROUP_GAP_FRACTION = 0.25


@dataclass(frozen=True)
class TokenMatch:
    """One kept query vector and the document token it matched best.

    ``span`` is the matched token's ``(start, end)`` in the original document text, or None when
    the match is the document marker or a special token ([CLS], [SEP]), which are kept vectors
    too. ``query_position`` / ``document_position`` are positions in the model inputs (0 is
    [CLS]). ``similarity`` is this query vector's contribution to the score.
    """

    query_token: str
    query_position: int
    document_token: str
    document_position: int
    span: tuple[int, int] | None
    similarity: float
    query_role: TokenRole = "text"
    document_role: TokenRole = "text"

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_token": self.query_token,
            "query_position": self.query_position,
            "query_role": self.query_role,
            "document_token": self.document_token,
            "document_position": self.document_position,
            "document_role": self.document_role,
            "span": None if self.span is None else list(self.span),
            "similarity": self.similarity,
        }


@dataclass(frozen=True)
class Explanation:
    """MaxSim of one query and one document, with one :class:`TokenMatch` per kept query vector.

    ``sum(m.similarity for m in matches)`` equals ``score`` up to float32 rounding;
    ``normalized_score`` is ``score`` divided by the number of query vectors, as in
    :class:`~edgecolbert.Result`. ``truncated`` says the document was longer
    than the model's ``document_length``: text past ``encoded_end`` (a character offset) was not
    seen and holds no match. ``document_chars`` is the length of the explained text.
    """

    score: float
    normalized_score: float
    matches: tuple[TokenMatch, ...]
    truncated: bool
    encoded_end: int
    document_chars: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; spans and ``encoded_end`` count Unicode code points (Python string indices)."""
        return {
            "score": self.score,
            "normalized_score": self.normalized_score,
            "truncated": self.truncated,
            "encoded_end": self.encoded_end,
            "document_chars": self.document_chars,
            "matches": [match.to_dict() for match in self.matches],
        }


@dataclass(frozen=True)
class MatchedSpan:
    """A matched document token's span with the summed contributions of the query tokens matching it."""

    start: int
    end: int
    score: float
    query_positions: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "query_positions": list(self.query_positions),
        }


@dataclass(frozen=True)
class Highlight:
    """A passage of the document, ``text[start:end]``; ``spans`` are the matched tokens inside it."""

    start: int
    end: int
    score: float
    text: str
    spans: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "text": self.text,
            "spans": [list(span) for span in self.spans],
        }


def explain(model: ColBERT, query: str, document: str) -> Explanation:
    """Split the MaxSim of ``query`` and ``document`` into per-query-token contributions.

    Costs one query encoding and one (unpooled) document encoding.
    """
    check_query(query)
    document = check_texts([document])[0]
    return _explain_against(model, _AlignedQuery(*model.encode_aligned(query, "query")), document)


@dataclass(frozen=True)
class TextHighlights:
    """What a result list shows for one text: its passages (best first) and every matched token's shading."""

    explanation: Explanation
    passages: tuple[Highlight, ...]
    spans: tuple[MatchedSpan, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``passages`` and ``spans`` with ``start``/``end`` offsets in Unicode code points."""
        return {
            "passages": [passage.to_dict() for passage in self.passages],
            "spans": [span.to_dict() for span in self.spans],
        }


def highlight_texts(
    model: ColBERT,
    query: str,
    texts: Sequence[str],
    *,
    max_passages: int = 3,
    fragment_chars: int = 160,
    query_vectors: np.ndarray | None = None,
) -> list[TextHighlights]:
    """:func:`highlights` and :func:`matched_spans` of each of ``texts``, in order, for one query.

    For showing results: the query is encoded once, each text once (unpooled, with its spans).
    ``query_vectors`` (``model.encode_query(query)``, from the ranking that returned the texts) spares
    the query's encoding.
    """
    check_query(query)
    texts = check_texts(texts)
    _check_positive("max_passages", max_passages)
    _check_positive("fragment_chars", fragment_chars)
    aligned = _aligned_query(model, query, query_vectors)
    result = []
    for text in texts:
        explanation = _explain_against(model, aligned, text)
        passages = highlights(explanation, text, max_passages=max_passages, fragment_chars=fragment_chars)
        result.append(TextHighlights(explanation, tuple(passages), tuple(matched_spans(explanation))))
    return result


def with_highlights(
    model: ColBERT, query: str, results: Sequence[Result], *, query_vectors: np.ndarray | None = None
) -> list[Result]:
    """Copies of ``results`` carrying the :func:`highlight_texts` of their texts (one call for all of them).

    What ``highlight=True`` on a rerank or a search adds: only the results returned are explained, and
    ``query_vectors`` (the ranking's own encoding of the query) spares a second encoding of the query.
    """
    if not results:
        return []
    shown = highlight_texts(model, query, [result.text for result in results], query_vectors=query_vectors)
    return [replace(result, highlights=item) for result, item in zip(results, shown)]


@dataclass(frozen=True)
class _AlignedQuery:
    vectors: np.ndarray
    tokens: TokenAlignment


def _aligned_query(model: ColBERT, query: str, query_vectors: np.ndarray | None) -> _AlignedQuery:
    """The query's vectors with their tokens: encoded here, or the caller's paired with a tokenization."""
    if query_vectors is None:
        return _AlignedQuery(*model.encode_aligned(query, "query"))
    vectors = check_query_vectors(query_vectors, model.dim)
    tokens = model.align(query, "query")
    if len(vectors) != len(tokens.tokens):
        raise InvalidInputError(
            f"query_vectors has {len(vectors)} rows but this query keeps {len(tokens.tokens)} vectors; "
            "pass model.encode_query(query) of this query and model."
        )
    return _AlignedQuery(vectors, tokens)


def _explain_against(model: ColBERT, query: _AlignedQuery, document: str) -> Explanation:
    q_vectors, q_tokens = query.vectors, query.tokens
    d_vectors, d_tokens = model.encode_aligned(document, "document")
    similarities = q_vectors @ d_vectors.T
    best = similarities.argmax(axis=1)
    contributions = similarities[np.arange(len(best)), best]
    score = float(maxsim(q_vectors, [d_vectors])[0])
    matches = tuple(
        TokenMatch(
            query_token=q_tokens.tokens[i],
            query_position=q_tokens.positions[i],
            document_token=d_tokens.tokens[j],
            document_position=d_tokens.positions[j],
            span=d_tokens.spans[j],
            similarity=float(contributions[i]),
            query_role=q_tokens.roles[i],
            document_role=d_tokens.roles[j],
        )
        for i, j in enumerate(best.tolist())
    )
    return Explanation(
        score=score,
        normalized_score=score / len(matches),
        matches=matches,
        truncated=d_tokens.truncated,
        encoded_end=d_tokens.encoded_end,
        document_chars=len(document),
    )


def matched_spans(explanation: Explanation) -> list[MatchedSpan]:
    """Each matched span once, in text order, with the contributions of all query tokens matching it.

    What a UI needs to shade the document by how much each token added to the score.
    """
    totals: dict[tuple[int, int], tuple[float, tuple[int, ...]]] = {}
    for match in explanation.matches:
        if match.span is None:
            continue
        score, positions = totals.get(match.span, (0.0, ()))
        totals[match.span] = (score + match.similarity, (*positions, match.query_position))
    return [
        MatchedSpan(start=start, end=end, score=score, query_positions=positions)
        for (start, end), (score, positions) in sorted(totals.items())
    ]


def highlights(
    explanation: Explanation, text: str, *, max_passages: int = 3, fragment_chars: int = 160
) -> list[Highlight]:
    """The best passages of ``text`` (the explained document), best first, like a search engine's snippets.

    Matched tokens are widened to whole words, words closer than a quarter of ``fragment_chars``
    are grouped, a group longer than ``fragment_chars`` is cut into windows around its strongest
    words, and each passage scores the sum of its words' contributions (only positive ones:
    a token that matched with a negative similarity is no evidence). Passages do not overlap,
    are at most ``fragment_chars`` long and are padded with surrounding context up to that length.
    A smaller ``max_passages`` gives the first passages of a larger one; their context can differ,
    since it never reaches into another passage shown.
    """
    _check_positive("max_passages", max_passages)
    _check_positive("fragment_chars", fragment_chars)
    text = check_texts([text])[0]
    if len(text) != explanation.document_chars:
        raise InvalidInputError(
            f"highlights needs the explained document's text ({explanation.document_chars} characters), "
            f"got {len(text)} characters; pass the same text given to explain."
        )
    words = _words(matched_spans(explanation), text, fragment_chars)
    passages: list[list[_Word]] = []
    for group in _groups(words, int(fragment_chars * _GROUP_GAP_FRACTION)):
        passages.extend(_windows(group, fragment_chars))
    passages.sort(key=lambda passage: (-_score(passage), passage[0].start))
    chosen = sorted(passages[:max_passages], key=lambda passage: passage[0].start)
    # Context stops where the encoding stopped: text the model never saw is no evidence.
    limit = explanation.encoded_end if explanation.truncated else len(text)
    ranges = _pad(text, [(p[0].start, max(w.end for w in p)) for p in chosen], fragment_chars, limit)
    result = [
        Highlight(
            start=start,
            end=end,
            score=_score(passage),
            text=text[start:end],
            spans=tuple(span for word in passage for span in word.spans),
        )
        for passage, (start, end) in zip(chosen, ranges)
    ]
    return sorted(result, key=lambda h: (-h.score, h.start))


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    score: float
    spans: tuple[tuple[int, int], ...]


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")


def _score(passage: list[_Word]) -> float:
    return sum(word.score for word in passage)


def _words(spans: list[MatchedSpan], text: str, fragment_chars: int) -> list[_Word]:
    """Positively scored spans widened to whole words; spans inside one word become one word."""
    words: dict[tuple[int, int], _Word] = {}
    for span in spans:
        if span.score <= 0:
            continue
        start, end = word_around(text, span.start, span.end)
        if end - start > fragment_chars:
            # A word longer than a fragment (a URL, an unsplit run): keep the token itself.
            start, end = span.start, min(span.end, span.start + fragment_chars)
        previous = words.get((start, end))
        if previous is None:
            words[(start, end)] = _Word(start, end, span.score, ((span.start, span.end),))
        else:
            spans_in = (*previous.spans, (span.start, span.end))
            words[(start, end)] = _Word(start, end, previous.score + span.score, spans_in)
    return _disjoint(sorted(words.values(), key=lambda word: (word.start, word.end)))


def word_around(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` widened to the whole word(s) it cuts: word pieces become the word they are part of."""
    while start > 0 and _joins(text[start - 1]) and _joins(text[start]):
        start -= 1
    while end < len(text) and _joins(text[end]) and _joins(text[end - 1]):
        end += 1
    return start, end


def _joins(char: str) -> bool:
    """Letters, digits and combining marks form words; wide (CJK) characters are words on their own."""
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return False
    return char.isalnum() or unicodedata.category(char).startswith("M")


def _disjoint(words: list[_Word]) -> list[_Word]:
    """Merge words that overlap (a long-token cut inside a word), so passages never share characters."""
    merged: list[_Word] = []
    for word in words:
        if merged and word.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = _Word(last.start, max(last.end, word.end), last.score + word.score, last.spans + word.spans)
        else:
            merged.append(word)
    return merged


def _groups(words: list[_Word], gap: int) -> list[list[_Word]]:
    groups: list[list[_Word]] = []
    for word in words:
        if groups and word.start - groups[-1][-1].end <= gap:
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


def _windows(group: list[_Word], fragment_chars: int) -> list[list[_Word]]:
    """Cut a group into passages of at most ``fragment_chars``: the best window first, then the rest."""
    if not group:
        return []
    best_score, best = -1.0, (0, 1)
    first = 0
    total = 0.0
    for last, word in enumerate(group):
        total += word.score
        while word.end - group[first].start > fragment_chars:
            total -= group[first].score
            first += 1
        if total > best_score:
            best_score, best = total, (first, last + 1)
    lo, hi = best
    return [group[lo:hi], *_windows(group[:lo], fragment_chars), *_windows(group[hi:], fragment_chars)]


def _pad(text: str, ranges: list[tuple[int, int]], fragment_chars: int, limit: int) -> list[tuple[int, int]]:
    """Widen each range (in text order) with context up to ``fragment_chars``, never into a neighbour.

    The widening stops at whitespace so context words are not cut in half where that is possible.
    """
    padded: list[tuple[int, int]] = []
    for index, (start, end) in enumerate(ranges):
        floor = padded[-1][1] if padded else 0
        ceiling = ranges[index + 1][0] if index + 1 < len(ranges) else max(limit, end)
        room = fragment_chars - (end - start)
        left = max(floor, start - room // 2)
        right = min(ceiling, end + (room - (start - left)))
        left = max(floor, start - (room - (right - end)))
        padded.append((_snap_left(text, left, start), _snap_right(text, right, end)))
    return padded


def _snap_left(text: str, left: int, start: int) -> int:
    """Move ``left`` forward to a word start if it cuts a word, but never past ``start``."""
    if left == 0 or text[left - 1].isspace():
        return left
    space = next((i for i in range(left, start) if text[i].isspace()), None)
    return start if space is None else _skip_space(text, space, start)


def _skip_space(text: str, index: int, limit: int) -> int:
    while index < limit and text[index].isspace():
        index += 1
    return index


def _snap_right(text: str, right: int, end: int) -> int:
    """Move ``right`` back to a word end if it cuts a word, but never before ``end``."""
    if right == len(text) or text[right].isspace():
        return right
    space = next((i for i in range(right - 1, end - 1, -1) if text[i].isspace()), None)
    if space is None:
        return end
    while space > end and text[space - 1].isspace():
        space -= 1
    return space
