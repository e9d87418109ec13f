"""Explanations: per-query-token contributions that add up to MaxSim, their character spans, and highlights."""

from __future__ import annotations

import asyncio
import itertools
import string
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checkpoints import TOKENIZER_DIR, build_edge_checkpoint, requires_shared
from edgecolbert import ColBERT, EmptyQueryError, InvalidDocumentError, InvalidInputError, Reranker, maxsim
from edgecolbert.scoring import Explanation, TokenMatch, explain, highlights
from edgecolbert.scoring.explain import matched_spans
from text_strategies import QUERY, TEXT

PIECES = [
    "café",
    "naïve",
    "Ärger",
    "e\u0301te\u0301",  # combining accents
    "東京都",
    "한국어",
    "🙂",
    "👩‍👩‍👧",
    "ﬁne",
    "İstanbul",
    "ΣΟΦΙΑ",
    "straße",
    "U.S.A.",
    "(x)",
    "--",
    "!?",
    "don't",
    "e-mail",
    "3.14",
    "\t",
    "  ",
]
WORD = st.sampled_from(PIECES) | st.text(string.ascii_letters + string.punctuation, min_size=1, max_size=8)
DOCUMENT = st.lists(WORD | TEXT, max_size=25).map(" ".join)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def edge_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ColBERT]:
    """Byte-level BPE checkpoints (ModernBERT tokenizer): one cased, one lowercasing."""
    if not TOKENIZER_DIR.exists():
        pytest.skip("../shared is absent: the ModernBERT tokenizer lives in ../shared/models/modernbert-tokenizer")
    cased = build_edge_checkpoint(tmp_path_factory.mktemp("cased"), num_hidden_layers=1, do_lower_case=False)
    lower = build_edge_checkpoint(tmp_path_factory.mktemp("lower"), num_hidden_layers=1)
    return {
        "cased": ColBERT.from_pretrained(cased, device="cpu"),
        "lower": ColBERT.from_pretrained(lower, device="cpu"),
    }


# --------------------------------------------------------------------------- helpers


def _normalize(model: ColBERT, text: str) -> str:
    # The same normalisation the tokenizer applied before splitting (lowercasing, accent stripping, NFC).
    normalizer = model.tokenizer._tokenizer.normalizer
    return text if normalizer is None else normalizer.normalize_str(text)


_BYTE_DECODER = None


def _byte_level_bytes(token: str) -> bytes:
    """The bytes a byte-level BPE token stands for (GPT-2's printable byte alphabet reversed)."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
        codes = printable[:]
        extra = 0
        for byte in range(256):
            if byte not in printable:
                printable.append(byte)
                codes.append(256 + extra)
                extra += 1
        _BYTE_DECODER = {chr(code): byte for byte, code in zip(printable, codes)}
    if not all(char in _BYTE_DECODER for char in token):
        return token.encode()  # an added token (ModernBERT's whitespace runs) is stored as plain text
    return bytes(_BYTE_DECODER[char] for char in token)


def _piece(model: ColBERT, token: str) -> bytes:
    """What the token must be found as in the normalised span text, as UTF-8 bytes.

    WordPiece: the token without its '##' continuation mark. Byte-level BPE: the token's bytes
    without the leading space ('Ġ') that marks a word start; a piece of a multi-byte character
    is a part of that character's bytes.
    """
    if type(model.tokenizer._tokenizer.model).__name__ == "WordPiece":
        return token.removeprefix("##").encode()
    return _byte_level_bytes(token).removeprefix(b" ")


def assert_span_is_token(model: ColBERT, text: str, token: str, span: tuple[int, int]) -> None:
    """``text[span]`` is the smallest range of original characters whose normalised form holds the token.

    An edge character may only be left in when it normalises to nothing (an accent the tokenizer
    strips, a control character it cleans).
    """
    start, end = span
    assert 0 <= start < end <= len(text), (span, len(text))
    if token == "[UNK]":
        return  # the tokenizer names no text for it; the span must still be inside the text
    piece = _piece(model, token)
    if not piece.strip():
        assert not text[start:end].strip(), (token, text[start:end])
        return
    normalized = _normalize(model, text[start:end]).encode()
    assert piece in normalized, (token, text[start:end], normalized)
    for rest in (text[start + 1 : end], text[start : end - 1]):
        if not rest:
            continue
        rest_normalized = _normalize(model, rest).encode()
        assert piece not in rest_normalized or rest_normalized == normalized, (token, text[start:end], rest)


def _reference_score(model: ColBERT, query: str, document: str) -> float:
    return float(maxsim(model.encode_queries([query])[0], model.encode_documents([document], pool_factor=1))[0])


def _check_explanation(model: ColBERT, query: str, document: str) -> Explanation:
    explanation = explain(model, query, document)
    reference = _reference_score(model, query, document)
    total = sum(match.similarity for match in explanation.matches)
    assert total == pytest.approx(reference, rel=1e-5, abs=1e-5)
    assert explanation.score == pytest.approx(reference, rel=1e-5, abs=1e-5)
    assert len(explanation.matches) == len(model.encode_query(query))
    skiplist = set(model.spec.skiplist_words)
    for match in explanation.matches:
        assert match.document_token not in skiplist, match
        assert (match.span is None) == (match.document_role != "text"), match
        if match.span is not None:
            assert_span_is_token(model, document, match.document_token, match.span)
    return explanation


def _check_alignment(model: ColBERT, document: str) -> None:
    """Every kept document token, matched or not, has the span of its own text."""
    vectors, tokens = model.encode_aligned(document, "document")
    assert len(vectors) == len(tokens.tokens) == len(tokens.spans)
    skiplist = set(model.spec.skiplist_words)
    for token, span in zip(tokens.tokens, tokens.spans):
        assert token not in skiplist
        if span is not None:
            assert_span_is_token(model, document, token, span)


# --------------------------------------------------------------------------- contributions and spans


@pytest.mark.slow
@PROPERTY
@given(query=QUERY, document=DOCUMENT)
def test_contributions_sum_to_maxsim_and_spans_cut_out_the_token_wordpiece(
    model: ColBERT, query: str, document: str
) -> None:
    _check_explanation(model, query, document)
    _check_alignment(model, document)


@requires_shared
@pytest.mark.slow
@PROPERTY
@given(query=QUERY, document=DOCUMENT, variant=st.sampled_from(["cased", "lower"]))
def test_contributions_sum_to_maxsim_and_spans_cut_out_the_token_byte_level_bpe(
    edge_models: dict[str, ColBERT], query: str, document: str, variant: str
) -> None:
    model = edge_models[variant]
    _check_explanation(model, query, document)
    _check_alignment(model, document)


def test_spans_index_the_original_text_of_accented_cjk_and_emoji(model: ColBERT) -> None:
    document = "Zoë visited 東京 🙂 and the CAFÉ, naïvely."
    _, tokens = model.encode_aligned(document, "document")
    found = {token: document[span[0] : span[1]] for token, span in zip(tokens.tokens, tokens.spans) if span}
    assert found["zoe"] == "Zoë"
    assert found["東"] == "東"
    assert found["[UNK]"] == "🙂"
    assert found["cafe"] == "CAFÉ"
    assert found["naive"] == "naïve" and found["##ly"] == "ly"
    assert "," not in tokens.tokens and "." not in tokens.tokens  # the skiplist drops them


@requires_shared
def test_byte_level_spans_leave_out_the_leading_space(edge_models: dict[str, ColBERT]) -> None:
    document = "Hello  wörld, café 🙂"
    _, tokens = edge_models["cased"].encode_aligned(document, "document")
    found = {token: document[span[0] : span[1]] for token, span in zip(tokens.tokens, tokens.spans) if span}
    assert found["ĠcafÃ©"] == "café"
    assert found["ĠðŁĻĤ"] == "🙂"
    assert "," not in tokens.tokens


def test_markers_special_and_expansion_tokens_are_named_and_have_no_span(model: ColBERT) -> None:
    explanation = explain(model, "what is a fox", "A fox.")
    roles = [match.query_role for match in explanation.matches]
    assert roles[:2] == ["special", "marker"]
    assert explanation.matches[0].query_token == "[CLS]"
    assert explanation.matches[1].query_token == "[unused0]"
    expansion = [match for match in explanation.matches if match.query_role == "expansion"]
    assert expansion and all(match.query_token == "[MASK]" for match in expansion)
    assert len(explanation.matches) == model.query_length  # every [MASK] is a scored query vector
    assert [m.query_position for m in explanation.matches] == list(range(model.query_length))
    _, tokens = model.encode_aligned("A fox.", "document")
    assert tokens.tokens[:2] == ("[CLS]", "[unused1]") and tokens.spans[:2] == (None, None)
    assert tokens.roles[:2] == ("special", "marker") and tokens.tokens[-1] == "[SEP]"


# --------------------------------------------------------------------------- truncation, skiplist, pooling


@pytest.fixture(scope="module")
def short_model(model: ColBERT) -> ColBERT:
    return ColBERT.from_pretrained(model.spec.path, device="cpu", document_length=8)


@pytest.mark.slow
@PROPERTY
@given(query=QUERY, document=DOCUMENT)
def test_truncated_documents_match_only_the_encoded_part(short_model: ColBERT, query: str, document: str) -> None:
    explanation = _check_explanation(short_model, query, document)
    # Independently of the alignment: the text tokens the model sees are the first
    # document_length - 3 ([CLS], the marker and [SEP] take the other positions).
    offsets = short_model.tokenizer._tokenizer.encode(document).offsets[1:-1]
    seen = offsets[: short_model.document_length - 3]
    last_end = max((end for _, end in seen), default=0)
    assert explanation.truncated == (len(offsets) > len(seen))
    for match in explanation.matches:
        if match.span is not None:
            assert _only_marks(document[last_end : match.span[1]]), (match, last_end)
    if explanation.truncated:
        assert explanation.encoded_end >= last_end
        assert _only_marks(document[last_end : explanation.encoded_end])


def _only_marks(text: str) -> bool:
    # Combining marks the normaliser folded into the last encoded character belong to it.
    return all(unicodedata.category(char).startswith("M") for char in text)


def test_truncation_keeps_the_closing_token_and_stops_spans(short_model: ColBERT) -> None:
    document = "alpha beta gamma delta epsilon zeta eta theta"
    _, tokens = short_model.encode_aligned(document, "document")
    assert tokens.truncated
    assert tokens.tokens == ("[CLS]", "[unused1]", "alpha", "beta", "gamma", "delta", "epsilon", "[SEP]")
    assert explain(short_model, "theta", document).encoded_end == document.index("epsilon") + len("epsilon")


def test_punctuation_is_never_a_match(model: ColBERT) -> None:
    document = ", . ! ? ; : ( ) word , . ! ?"
    for query in (",", "!?", "word", "( )"):
        explanation = _check_explanation(model, query, document)
        for match in explanation.matches:
            if match.span is not None:
                assert document[match.span[0] : match.span[1]] == "word"


def test_pooled_models_explain_the_unpooled_vectors(model: ColBERT) -> None:
    document = "The quick brown fox jumps over the lazy dog near the river bank."
    pooled = model.with_pool_factor(2)
    assert len(pooled.encode_documents([document])[0]) < len(model.encode_documents([document])[0])
    assert explain(pooled, "fox river", document) == explain(model, "fox river", document)


def test_reranker_explain_is_the_explanation_of_its_score(model: ColBERT) -> None:
    reranker = Reranker(model)
    documents = ["A fox in the henhouse.", "Dogs bark at night."]
    ranked = reranker.rerank("fox", documents)
    for result in ranked:
        explanation = reranker.explain("fox", result.document)
        assert explanation == explain(model, "fox", result.document)
        assert explanation.score == pytest.approx(result.score, rel=1e-5)
        assert explanation.normalized_score == pytest.approx(result.normalized_score, rel=1e-5)


def test_explain_rejects_what_rerank_rejects(model: ColBERT) -> None:
    with pytest.raises(EmptyQueryError):
        explain(model, "  ", "text")
    with pytest.raises(InvalidDocumentError, match="not str"):
        explain(model, "query", b"bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- highlights


def _explanation(text: str, spans: list[tuple[str, float]]) -> Explanation:
    """An explanation matching each named word of ``text`` (first occurrence) with a given contribution."""
    matches = []
    for position, (word, similarity) in enumerate(spans):
        start = text.index(word)
        matches.append(TokenMatch(word, position, word, position, (start, start + len(word)), similarity))
    matches.append(TokenMatch("[CLS]", len(matches), "[CLS]", 0, None, 0.5, "special", "special"))
    score = sum(match.similarity for match in matches)
    return Explanation(score, score / len(matches), tuple(matches), False, len(text), len(text))


def test_highlights_group_nearby_matches_and_rank_passages_by_their_sum() -> None:
    filler = " ".join(["lorem"] * 40)
    text = f"Intro about foxes. {filler} The red fox jumps the fence. {filler} A fox, alone."
    explanation = _explanation(text, [("red", 0.4), ("fox jumps", 0.5), ("fence", 0.3), ("A fox", 0.6)])
    result = highlights(explanation, text, fragment_chars=60)
    assert [round(h.score, 6) for h in result] == [1.2, 0.6]
    best = result[0]
    assert best.text == text[best.start : best.end] and len(best.text) <= 60
    assert "The red fox jumps the fence." in best.text
    assert not best.text.startswith("orem") and not best.text.endswith("lor")  # whole context words
    assert best.spans == ((text.index("red"), text.index("red") + 3), *best.spans[1:])


def test_highlights_widen_word_pieces_to_whole_words_and_skip_negative_matches() -> None:
    text = "unbelievable results, nothing else"
    start = text.index("believ")
    matches = (
        TokenMatch("believe", 0, "##believ", 2, (start, start + 6), 0.9),
        TokenMatch("else", 1, "else", 5, (text.index("else"), len(text)), -0.2),
    )
    explanation = Explanation(0.7, 0.35, matches, False, len(text), len(text))
    [only] = highlights(explanation, text, fragment_chars=12)
    assert only.text == "unbelievable" and only.score == pytest.approx(0.9)
    assert only.spans == ((start, start + 6),)


def test_highlights_cut_long_groups_around_the_strongest_words() -> None:
    text = "one two three four five six seven eight nine ten"
    weights = [("one", 0.1), ("two", 0.1), ("seven", 0.9), ("eight", 0.8), ("ten", 0.2)]
    result = highlights(_explanation(text, weights), text, fragment_chars=15, max_passages=1)
    [best] = result
    assert "seven eight" in best.text and len(best.text) <= 15
    assert best.score == pytest.approx(1.7)


def test_shading_sums_the_query_tokens_that_matched_one_span() -> None:
    text = "fox and hound"
    matches = (
        TokenMatch("fox", 2, "fox", 2, (0, 3), 0.7),
        TokenMatch("[MASK]", 3, "fox", 2, (0, 3), 0.2, "expansion"),
        TokenMatch("dog", 4, "hound", 4, (8, 13), 0.5),
    )
    explanation = Explanation(1.4, 0.47, matches, False, len(text), len(text))
    shades = matched_spans(explanation)
    assert [(s.start, s.end, round(s.score, 6), s.query_positions) for s in shades] == [
        (0, 3, 0.9, (2, 3)),
        (8, 13, 0.5, (4,)),
    ]


@pytest.mark.slow
@PROPERTY
@given(query=QUERY, document=DOCUMENT, fragment=st.integers(min_value=1, max_value=200))
# Here the top passage has more context alone than beside the passages just before it.
@example(query="0", document="café " * 11 + "été", fragment=15)
def test_highlights_are_disjoint_ranked_ranges_of_the_text(
    model: ColBERT, query: str, document: str, fragment: int
) -> None:
    explanation = explain(model, query, document)
    every = highlights(explanation, document, max_passages=10_000, fragment_chars=fragment)
    shades = {(shade.start, shade.end): shade.score for shade in matched_spans(explanation) if shade.score > 0}
    shown = [span for highlight in every for span in highlight.spans]
    # With room for every passage, every positively contributing token is shown, once.
    assert sorted(shown) == sorted(shades)
    for highlight in every:
        assert 0 <= highlight.start <= highlight.end <= len(document)
        assert highlight.end - highlight.start <= fragment
        assert highlight.text == document[highlight.start : highlight.end]
        assert highlight.score == pytest.approx(sum(shades[span] for span in highlight.spans), rel=1e-6, abs=1e-9)
        for start, end in highlight.spans:
            # A token longer than a fragment is shown from its start; any other is shown whole.
            assert highlight.start <= start < highlight.end
            assert end <= highlight.end or end - start > fragment
    ordered = sorted(every, key=lambda h: h.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(ordered))
    assert [h.score for h in every] == sorted((h.score for h in every), reverse=True)
    top = highlights(explanation, document, fragment_chars=fragment)
    # Fewer passages are the same passages; only their context may differ, as it stops at the passages shown.
    assert [(h.spans, h.score) for h in top] == [(h.spans, h.score) for h in every[:3]]
    if shades:
        assert top[0].score >= max(shades.values()) - 1e-9


def test_highlights_reject_another_text_and_bad_sizes(model: ColBERT) -> None:
    explanation = explain(model, "fox", "A fox.")
    with pytest.raises(InvalidInputError, match="same text given to explain"):
        highlights(explanation, "Another document.")
    with pytest.raises(InvalidDocumentError, match="not str"):
        highlights(explanation, b"A fox.")  # type: ignore[arg-type]
    for bad in ({"max_passages": 0}, {"fragment_chars": 0}, {"fragment_chars": 2.5}):
        with pytest.raises(InvalidInputError, match="positive integer"):
            highlights(explanation, "A fox.", **bad)


@requires_shared
def test_accents_composed_by_the_normalizer_stay_inside_the_span(edge_models: dict[str, ColBERT]) -> None:
    # NFC makes one character of "e" + U+0301; the tokenizer's offsets alone end before the accent.
    document = "e\u0301te\u0301 x\u0301y"
    _, tokens = edge_models["cased"].encode_aligned(document, "document")
    found = [document[span[0] : span[1]] for span in tokens.spans if span is not None]
    assert found[0] == "e\u0301te\u0301"
    assert "x" in found and "\u0301" in found  # an accent NFC cannot compose is a token of its own


def test_encoded_end_counts_skipped_punctuation(short_model: ColBERT) -> None:
    document = "a , , , , , b c"
    explanation = explain(short_model, "a", document)
    assert explanation.truncated
    # [CLS], the marker, five text tokens and [SEP]: the fifth text token is the fourth comma.
    assert explanation.encoded_end == 9


# --------------------------------------------------------------------------- stored documents


def _counting_forward(model: ColBERT, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows each model forward pass encoded, appended per call."""
    rows: list[int] = []
    forward = model.engine.forward

    def counted(batch):  # type: ignore[no-untyped-def]
        rows.append(len(batch.keep_mask))
        return forward(batch)

    monkeypatch.setattr(model.engine, "forward", counted)
    return rows


@pytest.mark.parametrize("pool_factor", [1, 2])
def test_a_stored_document_is_explained_from_its_text_with_one_encoding(
    tmp_path, model: ColBERT, monkeypatch: pytest.MonkeyPatch, pool_factor: int
) -> None:
    from edgecolbert.store import EdgeStore

    text = "Foxes hunt voles in the snow; the fox listens before it jumps."
    with EdgeStore(tmp_path / "store", model.with_pool_factor(pool_factor), datatype="float32") as store:
        store.add([text, "Dogs bark at night."], ids=["fox", "dog"])
        (hit,) = store.rerank("fox jumps", ["fox"])
        rows = _counting_forward(store.model, monkeypatch)
        explanation = store.explain("fox jumps", "fox")
    # One query and one document encoding, nothing else (the store is not searched).
    assert rows == [1, 1]
    assert explanation == explain(model, "fox jumps", text)
    if pool_factor == 1:
        assert explanation.score == pytest.approx(hit.score, rel=1e-5)


def test_explaining_an_unknown_stored_id_names_it(tmp_path, model: ColBERT) -> None:
    from edgecolbert import DocumentNotFoundError
    from edgecolbert.store import EdgeStore

    with EdgeStore(tmp_path / "store", model) as store:
        store.add(["Dogs bark at night."], ids=["dog"])
        with pytest.raises(DocumentNotFoundError, match="no document with id 'cat'"):
            store.explain("fox", "cat")
        with pytest.raises(DocumentNotFoundError, match="no document with id 'cat'"):
            store.stored_text("cat")
        assert store.stored_text("dog") == "Dogs bark at night."
        with pytest.raises(EmptyQueryError):
            store.explain(" ", "dog")


# --------------------------------------------------------------------------- result lists


def test_highlight_texts_encode_the_query_once_and_match_explain(model: ColBERT, monkeypatch) -> None:
    from edgecolbert.scoring import highlight_texts

    texts = ["Foxes hunt voles in the snow.", "Dogs bark at night.", ""]
    expected = [explain(model, "fox snow", text) for text in texts]
    rows = _counting_forward(model, monkeypatch)
    shown = highlight_texts(model, "fox snow", texts, max_passages=1, fragment_chars=12)
    assert rows == [1, 1, 1, 1]  # the query, then each text
    for text, explanation, item in zip(texts, expected, shown):
        assert item.explanation == explanation
        assert list(item.passages) == highlights(explanation, text, max_passages=1, fragment_chars=12)
        assert list(item.spans) == matched_spans(explanation)


def test_explanations_and_highlights_are_json_ready(model: ColBERT) -> None:
    import json

    from edgecolbert.scoring import highlight_texts

    text = "Foxes hunt voles in the snow."
    (item,) = highlight_texts(model, "fox snow", [text])
    data = json.loads(json.dumps(item.to_dict()))
    assert [(p["start"], p["end"], p["text"]) for p in data["passages"]] == [
        (p.start, p.end, p.text) for p in item.passages
    ]
    assert all(text[s["start"] : s["end"]] for s in data["spans"])
    explained = json.loads(json.dumps(item.explanation.to_dict()))
    assert sum(m["similarity"] for m in explained["matches"]) == pytest.approx(explained["score"], rel=1e-5)
    assert {tuple(m["span"]) for m in explained["matches"] if m["span"]} == {
        (s["start"], s["end"]) for s in data["spans"]
    }


def test_highlight_texts_reject_bad_input(model: ColBERT) -> None:
    from edgecolbert.scoring import highlight_texts

    with pytest.raises(EmptyQueryError):
        highlight_texts(model, "", ["text"])
    with pytest.raises(InvalidDocumentError):
        highlight_texts(model, "fox", "a single string")
    with pytest.raises(InvalidInputError, match="fragment_chars"):
        highlight_texts(model, "fox", ["text"], fragment_chars=0)


# --------------------------------------------------------------------------- highlight=True on results

RANKED = [
    "Foxes hunt voles in the snow; the fox listens before it jumps.",
    "Dogs bark at night.",
    "Snow falls on the hills in winter.",
    "A red fox crossed the road.",
]


def test_reranker_highlights_only_the_returned_results_on_request(model: ColBERT, monkeypatch) -> None:
    from edgecolbert.scoring import highlight_texts

    reranker = Reranker(model)
    rows = _counting_forward(model, monkeypatch)
    plain = reranker.rerank("fox snow", RANKED, top_k=2)
    assert all(result.highlights is None for result in plain)
    assert all("highlights" not in row for row in plain.to_list())
    rows.clear()
    # Documents are cached now: the query, encoded once for the ranking and the highlights, and the two
    # returned texts.
    shown = reranker.rerank("fox snow", RANKED, top_k=2, highlight=True)
    assert rows == [1, 1, 1]
    assert [(r.index, r.score) for r in shown] == [(r.index, r.score) for r in plain]
    assert [r.highlights for r in shown] == highlight_texts(model, "fox snow", [r.text for r in shown])
    assert [row["highlights"] for row in shown.to_list()] == [r.highlights.to_dict() for r in shown]
    rows.clear()
    reranker.rerank("fox snow", RANKED, top_k=2)
    assert rows == [1]  # off: the query alone, nothing spent on highlights

    async_shown = asyncio.run(reranker.arerank("fox snow", RANKED, top_k=2, highlight=True))
    assert [r.highlights for r in async_shown] == [r.highlights for r in shown]


@pytest.mark.parametrize("engine", ["edge", "qdrant"])
def test_store_hits_carry_highlights_only_on_request(tmp_path, model: ColBERT, monkeypatch, engine: str) -> None:
    from edgecolbert.scoring import highlight_texts
    from store_fixtures import open_store

    with open_store(engine, tmp_path, model, datatype="float32") as store:
        store.add(RANKED, ids=["fox", "dog", "snow", "road"])
        rows = _counting_forward(model, monkeypatch)
        plain = store.search("fox snow", top_k=2)
        reranked = store.rerank("fox snow", ["dog", "road", "fox"], top_k=2)
        assert rows == [1, 1]  # one query encoding each; off costs nothing more
        assert all(hit.highlights is None and "highlights" not in hit.to_dict() for hit in plain + reranked)

        rows.clear()
        found = store.search("fox snow", top_k=2, highlight=True)
        again = store.rerank("fox snow", ["dog", "road", "fox"], top_k=2, highlight=True)
        assert rows == [1, 1, 1] * 2  # each: the query once, for its ranking and its highlights, then two texts
        for hits, reference in ((found, plain), (again, reranked)):
            assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in reference]
            assert [h.highlights for h in hits] == highlight_texts(model, "fox snow", [h.text for h in hits])

        async def run():  # type: ignore[no-untyped-def]
            return (
                await store.asearch("fox snow", top_k=2, highlight=True),
                await store.arerank("fox snow", ["dog", "road", "fox"], top_k=2, highlight=True),
            )

        async_found, async_again = asyncio.run(run())
        assert [h.highlights for h in async_found] == [h.highlights for h in found]
        assert [h.highlights for h in async_again] == [h.highlights for h in again]


@requires_shared
@pytest.mark.parametrize("variant", ["cased", "lower"])
def test_a_no_break_space_token_spans_the_no_break_space_alone(edge_models: dict[str, ColBERT], variant: str) -> None:
    # Byte-level BPE makes " \xa0" one token: its span leaves the carried space out, as for any other token.
    _check_alignment(edge_models[variant], "cold \xa0 storage")
