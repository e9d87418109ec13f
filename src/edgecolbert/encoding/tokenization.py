"""Turn texts into ColBERT model inputs: marker token, truncation, [MASK] expansion, scoring masks.

The recipe follows PyLate 1.6 and sentence-transformers 6.2 ``MultiVectorEncoder`` token for
token (see ``../shared/reference/model-format.md`` §3), because the published quality of a
checkpoint only carries over when its inputs are built exactly as in training.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer
from tokenizers.normalizers import Lowercase, Normalizer
from tokenizers.normalizers import Sequence as NormalizerSequence

from edgecolbert.encoding.checkpoint import CheckpointSpec
from edgecolbert.errors import CorruptCheckpointError, InvalidInputError, MissingCheckpointFileError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

Kind = Literal["query", "document"]
# What a kept vector stands for: a piece of the text, the query/document marker, a special token
# the tokenizer adds ([CLS], [SEP]), or a [MASK] the query was padded with.
TokenRole = Literal["text", "marker", "special", "expansion"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class TokenizedBatch:
    """Padded model inputs for one batch, as numpy arrays of shape ``[batch, length]``."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    keep_mask: np.ndarray


@dataclass(frozen=True)
class TokenAlignment:
    """One text's model input tokens and where each came from in that text.

    ``spans[i]`` is the ``(start, end)`` character range in the original text of token ``i``
    (leading and trailing whitespace trimmed), or None for markers, special and expansion tokens.
    ``positions[i]`` is the token's position in the model input. ``encoded_end`` is where the
    encoded text ends: past it, a truncated text was not seen.
    """

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    roles: tuple[TokenRole, ...]
    spans: tuple[tuple[int, int] | None, ...]
    positions: tuple[int, ...]
    truncated: bool
    encoded_end: int

    def kept(self, keep_mask: np.ndarray, expansion_token: str) -> TokenAlignment:
        """The tokens of the kept vectors, in order; positions past the text are [MASK] expansion."""
        keep = np.flatnonzero(keep_mask)
        extra = len(self.ids)
        pick = [int(i) for i in keep if i < extra]
        n_expansion = int((keep >= extra).sum())
        expansion: TokenRole = "expansion"
        return TokenAlignment(
            ids=tuple(self.ids[i] for i in pick),
            tokens=tuple(self.tokens[i] for i in pick) + (expansion_token,) * n_expansion,
            roles=tuple(self.roles[i] for i in pick) + (expansion,) * n_expansion,
            spans=tuple(self.spans[i] for i in pick) + (None,) * n_expansion,
            positions=tuple(self.positions[i] for i in pick) + tuple(int(i) for i in keep[keep >= extra]),
            truncated=self.truncated,
            encoded_end=self.encoded_end,
        )


@dataclass(frozen=True)
class _Prefix:
    token_id: int | None
    text: str


class ColbertTokenizer:
    """Tokenizes queries and documents for one checkpoint.

    Holds its own copy of the fast tokenizer with padding and truncation switched off, so
    concurrent calls never race on the tokenizer's mutable settings.
    """

    def __init__(
        self,
        spec: CheckpointSpec,
        *,
        query_length: int,
        document_length: int,
    ) -> None:
        hf_tokenizer = _load_hf_tokenizer(spec.backbone_dir)
        self._tokenizer = _plain_backend(hf_tokenizer, lowercase=spec.do_lower_case)
        if spec.layout != "sentence-transformers":
            _register_markers(self._tokenizer, hf_tokenizer, (spec.query_prefix, spec.document_prefix))
        self._set_spec(spec, query_length, document_length)
        self.pad_id = _expansion_token_id(hf_tokenizer, spec.expansion_token)
        self._query_prefix = _resolve_prefix(hf_tokenizer, spec.query_prefix)
        self._document_prefix = _resolve_prefix(hf_tokenizer, spec.document_prefix)
        self.skiplist_ids = _skiplist_ids(hf_tokenizer, spec.skiplist_words)
        self.vocab_size = len(hf_tokenizer)

    def _set_spec(self, spec: CheckpointSpec, query_length: int, document_length: int) -> None:
        self.query_length = query_length
        self.document_length = document_length
        self.query_expansion = spec.query_expansion
        self.attend_to_expansion_tokens = spec.attend_to_expansion_tokens

    def state(self) -> dict[str, Any]:
        """What transformers worked out for this tokenizer, as JSON-ready values for :meth:`from_state`."""
        return {
            "tokenizer": self._tokenizer.to_str(),
            "pad_id": self.pad_id,
            "query_prefix": [self._query_prefix.token_id, self._query_prefix.text],
            "document_prefix": [self._document_prefix.token_id, self._document_prefix.text],
            "skiplist_ids": self.skiplist_ids.tolist(),
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_state(
        cls, spec: CheckpointSpec, state: dict[str, Any], *, query_length: int, document_length: int
    ) -> ColbertTokenizer:
        """The tokenizer :meth:`state` described, rebuilt with the tokenizers library alone (no transformers)."""
        tokenizer = cls.__new__(cls)
        tokenizer._tokenizer = Tokenizer.from_str(state["tokenizer"])
        tokenizer._set_spec(spec, query_length, document_length)
        tokenizer.pad_id = int(state["pad_id"])
        tokenizer._query_prefix = _Prefix(*state["query_prefix"])
        tokenizer._document_prefix = _Prefix(*state["document_prefix"])
        tokenizer.skiplist_ids = np.array(state["skiplist_ids"], dtype=np.int64)
        tokenizer.vocab_size = int(state["vocab_size"])
        return tokenizer

    def token_ids(self, texts: Sequence[str], kind: Kind) -> tuple[list[list[int]], int]:
        """Token ids per text with the marker inserted and truncation applied.

        Returns the ids and how many texts were truncated.
        """
        prefix = self._prefix(kind)
        budget = self._budget(kind)
        sequences: list[list[int]] = []
        truncated = 0
        for encoding in self._encode(texts, prefix):
            ids = _truncate(encoding.ids, budget)
            truncated += len(ids) < len(encoding.ids)
            sequences.append(ids if prefix.token_id is None else _insert_marker(ids, prefix.token_id))
        return sequences, truncated

    def align(self, text: str, kind: Kind) -> TokenAlignment:
        """The ids :meth:`token_ids` makes of ``text``, each with its token, role and character span."""
        prefix = self._prefix(kind)
        encoding = self._encode([text], prefix)[0]
        budget = self._budget(kind)
        # The prefix text, when the marker is not one token, is tokenized with the text; its
        # offsets are shifted back so spans index ``text`` itself.
        shift = len(prefix.text)
        spans: list[tuple[int, int] | None] = []
        roles: list[TokenRole] = []
        for (start, end), special in zip(encoding.offsets, encoding.special_tokens_mask):
            if special and start == end:
                spans.append(None)
                roles.append("special")
            elif end <= shift:
                spans.append(None)
                roles.append("marker")
            else:
                span = _trim_span(text, max(start - shift, 0), end - shift)
                spans.append(self._absorb_marks(text, span))
                roles.append("text")
        marker_id = prefix.token_id

        def place(items: Sequence[Any], marker: object) -> tuple[Any, ...]:
            truncated = _truncate(items, budget)
            return tuple(truncated if marker_id is None else _insert_marker(truncated, marker))

        ids = place(encoding.ids, marker_id)
        encoded = [span for span in place(spans, None) if span is not None]
        marker_token = self._tokenizer.id_to_token(marker_id) if marker_id is not None else None
        return TokenAlignment(
            ids=ids,
            tokens=place(encoding.tokens, marker_token),
            roles=place(roles, "marker"),
            spans=place(spans, None),
            positions=tuple(range(len(ids))),
            truncated=len(encoding.ids) > budget,
            encoded_end=max((end for _, end in encoded), default=0),
        )

    def _absorb_marks(self, text: str, span: tuple[int, int]) -> tuple[int, int]:
        """Extend a span over the combining marks the normaliser folded into its last character.

        NFC composes "e" + U+0301 into "é", and the tokenizer's offsets then end before the mark;
        a mark that stays separate after normalising belongs to the next token and is left out.
        """
        start, end = span
        normalizer = self._tokenizer.normalizer
        while end < len(text) and unicodedata.category(text[end]).startswith("M") and normalizer is not None:
            if len(normalizer.normalize_str(text[start : end + 1])) > len(normalizer.normalize_str(text[start:end])):
                break
            end += 1
        return (start, end)

    @property
    def expansion_token(self) -> str:
        """The text of the token queries are padded with ([MASK] for most checkpoints)."""
        return self._tokenizer.id_to_token(self.pad_id) or f"<id {self.pad_id}>"

    def _prefix(self, kind: Kind) -> _Prefix:
        return self._query_prefix if kind == "query" else self._document_prefix

    def _budget(self, kind: Kind) -> int:
        length = self.query_length if kind == "query" else self.document_length
        # The marker takes one position, so the text gets one fewer (PyLate truncates to L - 1).
        return length - 1 if self._prefix(kind).token_id is not None else length

    def count(self, texts: Sequence[str], kind: Kind = "document") -> list[int]:
        """Untruncated token counts, markers and special tokens included: what a text would need."""
        prefix = self._query_prefix if kind == "query" else self._document_prefix
        marker = 1 if prefix.token_id is not None else 0
        return [len(encoding.ids) + marker for encoding in self._encode(texts, prefix)]

    def _encode(self, texts: Sequence[str], prefix: _Prefix) -> list[Encoding]:
        if prefix.text:
            texts = [prefix.text + text for text in texts]
        try:
            return self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        except TypeError:
            # The Rust tokenizer rejects strings holding lone UTF-16 surrogates (broken decodes of
            # scraped text); they carry no meaning, so they become U+FFFD like any undecodable byte.
            logger.warning("Replaced lone surrogate characters in the input with U+FFFD.")
            clean = [_LONE_SURROGATE.sub("\ufffd", text) for text in texts]
            return self._tokenizer.encode_batch(clean, add_special_tokens=True)

    def pad(self, sequences: Sequence[Sequence[int]], kind: Kind) -> TokenizedBatch:
        """Pad a batch and build the attention mask and the mask of vectors to keep."""
        expand = kind == "query" and self.query_expansion
        width = self.query_length if expand else max(len(ids) for ids in sequences)
        input_ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        if expand:
            # Every [MASK] position is scored; the encoder sees them only when the model was trained so.
            keep_mask = np.ones_like(attention_mask, dtype=bool)
            if self.attend_to_expansion_tokens:
                attention_mask = np.ones_like(attention_mask)
        elif kind == "query" or self.skiplist_ids.size == 0:
            keep_mask = attention_mask.astype(bool)
        else:
            keep_mask = attention_mask.astype(bool) & ~np.isin(input_ids, self.skiplist_ids)
        return TokenizedBatch(input_ids=input_ids, attention_mask=attention_mask, keep_mask=keep_mask)


def _truncate(items: Sequence[_T], budget: int) -> list[_T]:
    """At most ``budget`` items, keeping the closing special token as the tokenizer's own truncation does."""
    kept = list(items)
    return kept if len(kept) <= budget else kept[: budget - 1] + kept[-1:]


def _insert_marker(items: list[Any], marker: object) -> list[Any]:
    """The marker goes right after the opening special token (PyLate's position 1)."""
    return items[:1] + [marker] + items[1:]


def _trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without surrounding whitespace (byte-level BPE tokens carry their leading space)."""
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        # A token of other whitespace (a no-break space) keeps it; only the space the token carries goes.
        kept = piece.lstrip(" ")
        return (end - len(kept), end) if kept else (start, end)
    start += len(piece) - len(piece.lstrip())
    return (start, start + len(stripped))


def _load_hf_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise MissingCheckpointFileError(
            f"{folder} has no tokenizer files (tokenizer.json, vocab.txt or tokenizer_config.json)."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as exc:  # transformers raises many types for unreadable tokenizer files
        raise CorruptCheckpointError(f"The tokenizer in {folder} could not be loaded: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise CorruptCheckpointError(f"The tokenizer in {folder} has no fast (Rust) implementation.")
    return cast("PreTrainedTokenizerFast", tokenizer)


def _plain_backend(hf_tokenizer: PreTrainedTokenizerFast, *, lowercase: bool) -> Tokenizer:
    backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    if lowercase and not _has_lowercase(backend.normalizer):
        # Lowercasing as a normaliser step (not str.lower) matches sentence-transformers exactly,
        # including characters where the two differ (the Greek final sigma).
        existing = backend.normalizer
        steps: list[Normalizer] = [Lowercase()]
        if isinstance(existing, NormalizerSequence):
            steps += _steps(existing)
        elif existing is not None:
            steps.append(existing)
        backend.normalizer = NormalizerSequence(steps)
    return backend


def _register_markers(backend: Tokenizer, hf_tokenizer: PreTrainedTokenizerFast, prefixes: Sequence[str]) -> None:
    """Make a marker that occurs in user text tokenize as the marker token, as sentence-transformers does.

    Legacy checkpoints store "[Q] " or "[unused0]" as ordinary vocabulary entries, which a
    lowercasing or word-splitting tokenizer breaks apart when the text itself contains them.
    sentence-transformers registers them as special tokens on load; doing the same keeps such texts
    (rare, but real in scraped corpora) tokenized identically.
    """
    known = set(hf_tokenizer.get_vocab())
    for prefix in prefixes:
        if not prefix or not prefix.split():
            continue
        for candidate in (prefix, prefix.split(None, 1)[0]):
            if candidate not in known:
                continue
            if backend.encode(candidate, add_special_tokens=False).tokens != [candidate]:
                backend.add_special_tokens([AddedToken(candidate, normalized=False, special=True)])
            break


def _has_lowercase(normalizer: Normalizer | None) -> bool:
    if isinstance(normalizer, Lowercase):
        return True
    if isinstance(normalizer, NormalizerSequence):
        return any(isinstance(step, Lowercase) for step in _steps(normalizer))
    return False


def _steps(sequence: NormalizerSequence) -> list[Normalizer]:
    # The binding indexes but declares no __iter__.
    return [sequence[i] for i in range(len(sequence))]


def _token_id(hf_tokenizer: PreTrainedTokenizerFast, token: str) -> int | None:
    # One token gives one id (or None); transformers types the lookup for lists of tokens too.
    return cast("int | None", hf_tokenizer.convert_tokens_to_ids(token))


def _resolve_prefix(hf_tokenizer: PreTrainedTokenizerFast, prefix: str) -> _Prefix:
    """A marker the vocabulary knows is inserted as one token id; any other prefix is plain text."""
    if not prefix:
        return _Prefix(token_id=None, text="")
    unk = hf_tokenizer.unk_token_id
    for candidate in (prefix, prefix.split(None, 1)[0] if prefix.split() else prefix):
        token_id = _token_id(hf_tokenizer, candidate)
        if token_id is not None and (token_id != unk or candidate == hf_tokenizer.unk_token):
            return _Prefix(token_id=int(token_id), text="")
    return _Prefix(token_id=None, text=prefix)


def _expansion_token_id(hf_tokenizer: PreTrainedTokenizerFast, token: str | None) -> int:
    if token is not None:
        return int(cast(int, _token_id(hf_tokenizer, token)))
    for candidate in (hf_tokenizer.mask_token_id, hf_tokenizer.eos_token_id, hf_tokenizer.pad_token_id):
        if candidate is not None:
            return int(candidate)
    raise CorruptCheckpointError("The tokenizer has no [MASK], end-of-sequence or padding token to pad with.")


def _skiplist_ids(hf_tokenizer: PreTrainedTokenizerFast, words: Sequence[str]) -> np.ndarray:
    unk = hf_tokenizer.unk_token_id
    ids = []
    for word in words:
        token_id = _token_id(hf_tokenizer, word)
        # A word outside the vocabulary maps to [UNK]; skipping it would drop every real [UNK].
        if token_id is None or (token_id == unk and word != hf_tokenizer.unk_token):
            continue
        ids.append(int(token_id))
    return np.array(sorted(set(ids)), dtype=np.int64)


def check_length(name: str, value: int, maximum: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 3:
        raise InvalidInputError(f"{name} must be an integer of at least 3 tokens, got {value!r}.")
    if maximum is not None and value > maximum:
        raise InvalidInputError(
            f"{name}={value} exceeds the backbone's {maximum} position embeddings; use at most {maximum}."
        )
    return value
